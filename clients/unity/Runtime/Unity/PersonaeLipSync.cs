// Moves a face with a character's voice: npc.viseme events drive a SkinnedMeshRenderer's
// blendshapes through a VisemeMap, timed by how much of the reply the player has heard.
using System;
using System.Collections.Generic;
using UnityEngine;

namespace Personae.Unity
{
    [AddComponentMenu("personae/Personae Lip Sync")]
    public sealed class PersonaeLipSync : MonoBehaviour
    {
        [Tooltip("The character whose visemes move this face (its id in the daemon).")]
        [SerializeField] private string characterId = "";
        [SerializeField] private SkinnedMeshRenderer face;
        [SerializeField] private VisemeMap map;
        [Tooltip("Empty: the PersonaeClient in the scene.")]
        [SerializeField] private PersonaeClient client;
        [Tooltip("The voice that plays this character: its play-out clock times the mouth. Empty: the PersonaeVoice on this object, if any.")]
        [SerializeField] private PersonaeVoice voice;
        [Tooltip("Milliseconds over which one mouth shape blends into the next.")]
        [Range(0f, 200f)] [SerializeField] private float blendMs = 60f;

        /// <summary>
        /// Milliseconds of the current reply's audio the player has heard (its play-out
        /// position). Unset, the voice's play-out clock is used; with no voice either, the
        /// component counts from the reply's first viseme event, which runs early by the
        /// audio still buffered.
        /// </summary>
        public Func<double> HeardMs { get; set; }

        public VisemeTrack Track { get { return _track; } }

        private readonly VisemeTrack _track = new VisemeTrack();
        private readonly List<int> _indices = new List<int>();
        private readonly List<VisemeMap.Entry> _entries = new List<VisemeMap.Entry>();
        private float _firstEventAt = -1f;

        private void OnEnable()
        {
            if (client == null) client = PersonaeClient.FindInScene();
            if (voice == null) voice = GetComponent<PersonaeVoice>();
            if (client != null) client.EventReceived += OnEvent;
            Resolve();
        }

        private void OnDisable()
        {
            if (client != null) client.EventReceived -= OnEvent;
        }

        /// <summary>Looks the map's blendshapes up on the face mesh (call after changing either).</summary>
        public void Resolve()
        {
            _indices.Clear();
            _entries.Clear();
            if (face == null || face.sharedMesh == null || map == null) return;
            foreach (var e in map.entries)
            {
                int index = face.sharedMesh.GetBlendShapeIndex(e.blendShape);
                if (index < 0)
                {
                    Debug.LogWarning("personae: " + face.name + " has no blendshape " + e.blendShape, this);
                    continue;
                }
                _indices.Add(index);
                _entries.Add(e);
            }
        }

        private void OnEvent(ServerEvent e)
        {
            var v = e as NpcViseme;
            if (v != null && v.CharacterId == characterId)
            {
                if (v.ResponseId != _track.ResponseId) _firstEventAt = Time.realtimeSinceStartup;
                _track.Add(v);
            }
            // barge-in: the player stopped hearing the reply where it is now
            else if (e is SpeechStarted && _track.ResponseId != null) _track.Cut((int)Heard());
        }

        private double Heard()
        {
            if (HeardMs != null) return HeardMs();
            if (voice != null) return voice.Clock.HeardMs;
            return _firstEventAt < 0 ? -1 : (Time.realtimeSinceStartup - _firstEventAt) * 1000.0;
        }

        private void Update()
        {
            if (face == null || _entries.Count == 0) return;
            _track.BlendMs = blendMs;
            Dictionary<string, float> weights = _track.Weights(Heard());
            for (int i = 0; i < _entries.Count; i++)
            {
                float w;
                weights.TryGetValue(_entries[i].viseme, out w);
                face.SetBlendShapeWeight(_indices[i], 100f * w * _entries[i].weight);
            }
        }
    }
}
