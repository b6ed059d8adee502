// Inspector for PersonaeClient: connection state, session, voices; and a menu item that
// sets up a client with a microphone in the open scene.
using Personae.Unity;
using UnityEditor;
using UnityEngine;

namespace Personae.Editor
{
    [CustomEditor(typeof(PersonaeClient))]
    public sealed class PersonaeClientEditor : UnityEditor.Editor
    {
        public override void OnInspectorGUI()
        {
            DrawDefaultInspector();
            var client = (PersonaeClient)target;
            if (!Application.isPlaying)
            {
                EditorGUILayout.HelpBox("Start a daemon with `personae serve`; the client connects on Play.", MessageType.Info);
                return;
            }
            EditorGUILayout.Space();
            EditorGUILayout.LabelField("Connection", client.State.ToString());
            SessionInfo session = client.Session;
            if (session != null)
            {
                EditorGUILayout.LabelField("Session", session.Id ?? "–");
                EditorGUILayout.LabelField("Scene", session.Characters == null ? "every character" : string.Join(", ", session.Characters.ToArray()));
                EditorGUILayout.LabelField("Turns", session.TurnDetection == null ? "push-to-talk" : "voice activity (server)");
                EditorGUILayout.LabelField("Audio in / out", session.InputSampleRate + " / " + session.OutputSampleRate + " Hz");
            }
            if (client.Client != null) EditorGUILayout.LabelField("Reconnects", client.Client.Reconnects.ToString());
            using (new EditorGUI.DisabledScope(client.IsConnected))
            {
                if (GUILayout.Button("Connect")) client.Connect();
            }
            Repaint();
        }

        [MenuItem("GameObject/personae/Client with Microphone", false, 10)]
        private static void CreateClient(MenuCommand command)
        {
            var go = new GameObject("Personae Client");
            go.AddComponent<PersonaeClient>();
            go.AddComponent<PersonaeMicrophone>();
            GameObjectUtility.SetParentAndAlign(go, command.context as GameObject);
            Undo.RegisterCreatedObjectUndo(go, "Create personae client");
            Selection.activeObject = go;
        }

        [MenuItem("GameObject/personae/Character Voice", false, 11)]
        private static void CreateVoice(MenuCommand command)
        {
            var go = new GameObject("Personae Voice");
            go.AddComponent<AudioSource>();
            go.AddComponent<PersonaeVoice>();
            GameObjectUtility.SetParentAndAlign(go, command.context as GameObject);
            Undo.RegisterCreatedObjectUndo(go, "Create personae voice");
            Selection.activeObject = go;
        }
    }
}
