// Sample: Bram and Mara in one scene. Type a line or hold the button (or T) to talk;
// the log shows what the daemon heard, who answers and why, and each reply, while each
// character speaks through their own AudioSource. Start a daemon first: `personae serve`.
// One action is handled: ask Bram to repair an item ("Bram, can you fix my sword?"); the
// sample "repairs" it and answers the daemon with a game.action_result, which Bram remembers.
using System.Collections.Generic;
using Personae.Unity;
using UnityEngine;

namespace Personae.Samples
{
    public sealed class TwoCharactersSample : MonoBehaviour
    {
        [SerializeField] private PersonaeClient client;
        [SerializeField] private PersonaeMicrophone microphone;

        private readonly List<string> _log = new List<string>();
        private string _line = "Bram, can you fix my sword?";
        private string _status = "connecting…";
        private Vector2 _scroll;
        private bool _holding;

        private void OnEnable()
        {
            client.onRouted.AddListener((who, reason) => Add("→ " + who + " answers (" + reason + ")"));
            client.onTranscript.AddListener(text => Add("You (spoken): " + text));
            client.onResponseDone.AddListener((who, text) => Add(who + ": " + text));
            client.onError.AddListener((code, message) => _status = code + ": " + message);
            client.EventReceived += OnEvent;
        }

        private void OnDisable()
        {
            client.EventReceived -= OnEvent;
        }

        // The one action this sample executes: Bram's "repair" (item: sword, axe, shield, ...).
        private void OnEvent(ServerEvent e)
        {
            var action = e as NpcAction;
            if (action == null || !action.IsGameAction || action.Name != "repair") return;
            object item;
            action.Arguments.TryGetValue("item", out item);
            Add("[game] " + action.Character + " repairs the " + item);
            _ = client.SendActionResultAsync(action.ActionId, ActionStatus.Done, "the " + item + " is mended", System.Threading.CancellationToken.None);
        }

        private void Update()
        {
            if (client.IsConnected) _status = "connected: " + client.Session.Id;
        }

        private void Add(string line)
        {
            _log.Add(line);
            _scroll.y = float.MaxValue;
        }

        private void OnGUI()
        {
            GUILayout.BeginArea(new Rect(16, 16, Screen.width - 32, Screen.height - 32));
            GUILayout.Label(_status);
            _scroll = GUILayout.BeginScrollView(_scroll, GUILayout.ExpandHeight(true));
            foreach (string line in _log) GUILayout.Label(line);
            GUILayout.EndScrollView();
            GUILayout.BeginHorizontal();
            _line = GUILayout.TextField(_line, GUILayout.ExpandWidth(true));
            if (GUILayout.Button("Send", GUILayout.Width(80)) && _line.Trim().Length > 0)
            {
                Add("You: " + _line);
                client.Say(_line);
                _line = "";
            }
            Rect talk = GUILayoutUtility.GetRect(new GUIContent("Hold to talk"), GUI.skin.button, GUILayout.Width(140));
            GUI.Button(talk, _holding ? "Listening…" : "Hold to talk");
            Event e = Event.current;
            if (e.type == EventType.MouseDown && talk.Contains(e.mousePosition)) { _holding = true; microphone.Press(); }
            if (e.type == EventType.MouseUp && _holding) { _holding = false; microphone.Release(); }
            GUILayout.EndHorizontal();
            GUILayout.EndArea();
        }
    }
}
