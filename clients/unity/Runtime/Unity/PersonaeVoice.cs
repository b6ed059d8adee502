// One character's voice: audio deltas for that character go into a jitter buffer and
// play through this GameObject's AudioSource, from OnAudioFilterRead (default: lowest
// latency) or as a streaming AudioClip (Unity resamples and spatialises it like any
// clip, but reads it up to ~0.8 s ahead). Either way subtitles and actions fire when
// their audio is heard (Playout: play-out time, not the time audio reached Unity), and
// on barge-in the heard position goes to the daemon in conversation.item.truncate.
using System;
using System.Collections.Generic;
using UnityEngine;
using UnityEngine.Events;

namespace Personae.Unity
{
    [Serializable] public sealed class BoolEvent : UnityEvent<bool> { }
    [Serializable] public sealed class SubtitleEvent : UnityEvent<string, int> { } // text, duration ms
    [Serializable] public sealed class CueEvent : UnityEvent<string, string> { }   // kind ("action" or "emotion"), text

    public enum VoicePlayback
    {
        /// <summary>A looping streaming AudioClip at the daemon's rate: works with 3D sound.</summary>
        StreamingClip,
        /// <summary>OnAudioFilterRead at the mixer's rate: lowest latency, 2D.</summary>
        FilterRead,
    }

    [RequireComponent(typeof(AudioSource))]
    [AddComponentMenu("personae/Personae Voice")]
    public sealed class PersonaeVoice : MonoBehaviour, IPlayoutClock
    {
        [SerializeField] private PersonaeClient client;
        [Tooltip("The character id this voice plays, e.g. \"bram\".")]
        [SerializeField] private string characterId = "";
        [SerializeField] private VoicePlayback playback = VoicePlayback.FilterRead;
        [Tooltip("Audio held back before playback starts, to ride out network jitter.")]
        [Range(20, 1000)] [SerializeField] private int prebufferMs = 120;
        [Tooltip("Most audio queued; beyond it the oldest is dropped.")]
        [Range(1, 120)] [SerializeField] private int maxBufferSeconds = 30;

        public BoolEvent onSpeakingChanged = new BoolEvent();
        /// <summary>A sentence starts playing now: subtitles and lip-sync.</summary>
        public SubtitleEvent onSentenceStarted = new SubtitleEvent();
        /// <summary>A stage direction reaches its place in the audio: trigger the gesture or face.</summary>
        public CueEvent onActionStarted = new CueEvent();

        private readonly Queue<NpcSentence> _sentences = new Queue<NpcSentence>();
        private readonly CutItems _cut = new CutItems();
        private readonly Queue<NpcAction> _actions = new Queue<NpcAction>();
        private volatile JitterBuffer _buffer;
        private Resampler _resampler;
        private AudioSource _source;
        private int _rate;
        private int _bufferRate;
        private int _deviceRate;
        private float[] _mono = new float[0];
        private string _itemId;
        private bool _speaking;
        private volatile Playout _playout;
        private int _clipPosition;  // the streaming clip's last timeSamples
        private long _clipPlayed;   // ... unwrapped: frames it has played

        public string CharacterId { get { return characterId; } set { characterId = value; } }

        public bool IsSpeaking { get { return _speaking; } }

        /// <summary>Milliseconds of the current reply the player has heard: what came out of
        /// the speaker, not what was handed to Unity (lip-sync, truncation after a barge-in).</summary>
        public int HeardMs
        {
            get
            {
                Playout p = _playout;
                return p == null ? 0 : p.HeardMs;
            }
        }

        /// <summary>The play-out clock of this voice (lip-sync components read it).</summary>
        public IPlayoutClock Clock { get { return this; } }

        private void Awake()
        {
            _source = GetComponent<AudioSource>();
            _deviceRate = AudioSettings.outputSampleRate;
        }

        private void OnEnable()
        {
            if (client == null) client = PersonaeClient.FindInScene();
            if (client != null) client.Register(this);
            else Debug.LogWarning("personae: PersonaeVoice '" + characterId + "' has no PersonaeClient", this);
        }

        private void OnDisable()
        {
            if (client != null) client.Unregister(this);
            if (_source != null) _source.Stop();
        }

        /// <summary>PCM16 mono at <paramref name="rate"/>; called on the main thread by PersonaeClient.</summary>
        public void Enqueue(string itemId, byte[] pcm16, int rate)
        {
            if (_cut.Contains(itemId)) return; // in flight when the voice stopped
            if (rate != _rate || _buffer == null) Rebuild(rate);
            JitterBuffer buffer = _buffer;
            if (itemId != _itemId)
            {
                _itemId = itemId;
                _playout.BeginItem(itemId, buffer.Buffered);
            }
            float[] samples = Pcm16.ToFloat(pcm16);
            if (_resampler != null) samples = _resampler.Process(samples);
            buffer.Write(samples);
        }

        /// <summary>The reply's audio is complete: play the tail even if it is shorter than the prebuffer.</summary>
        public void EndOfResponse()
        {
            if (_buffer != null) _buffer.MarkEnded();
        }

        public void QueueSentence(NpcSentence sentence)
        {
            if (!_cut.Contains(sentence.ItemId)) _sentences.Enqueue(sentence);
        }

        public void QueueAction(NpcAction action)
        {
            if (!_cut.Contains(action.ItemId)) _actions.Enqueue(action);
        }

        /// <summary>Silence at once (barge-in, cancelled reply). Returns the truncate that
        /// says how much of the reply was heard (null when nothing of one played).</summary>
        public ConversationItemTruncate Stop()
        {
            Playout playout = _playout;
            ConversationItemTruncate heard = _speaking && playout != null ? playout.Truncation() : null;
            if (_buffer != null) _buffer.Clear();
            if (_resampler != null) _resampler.Reset();
            if (playout != null) playout.Stop();
            // what is still on the wire of these replies must not play after the stop
            _cut.Add(_itemId);
            foreach (NpcSentence s in _sentences) _cut.Add(s.ItemId);
            _sentences.Clear();
            _actions.Clear();
            _itemId = null;
            return heard;
        }

        private void Rebuild(int rate)
        {
            _rate = rate;
            _bufferRate = playback == VoicePlayback.FilterRead ? _deviceRate : rate;
            _resampler = playback == VoicePlayback.FilterRead && rate != _deviceRate ? new Resampler(rate, _deviceRate) : null;
            _buffer = new JitterBuffer(_bufferRate * maxBufferSeconds, _bufferRate * prebufferMs / 1000);
            Playout playout = new Playout(_bufferRate);
            if (playback == VoicePlayback.FilterRead)
            {
                // a block rendered now plays after the DSP buffers ahead of it
                int length, count;
                AudioSettings.GetDSPBufferSize(out length, out count);
                playout.SetOutputLatency(length * count);
            }
            _playout = playout;
            _itemId = null;
            _clipPosition = 0;
            _clipPlayed = 0;
            _source.Stop();
            if (playback == VoicePlayback.StreamingClip)
            {
                _source.clip = AudioClip.Create("personae-" + characterId, rate, 1, rate, true, OnClipRead);
                _source.loop = true;
            }
            else
            {
                _source.clip = null;
            }
            _source.Play();
        }

        // Audio thread: the streaming clip asks for its next block.
        private void OnClipRead(float[] data)
        {
            JitterBuffer buffer = _buffer;
            Playout playout = _playout;
            if (buffer == null) Array.Clear(data, 0, data.Length);
            else
            {
                int real = buffer.Read(data, 0, data.Length);
                if (playout != null) playout.Rendered(data.Length, real);
            }
        }

        // Audio thread: fill every channel with the mono voice.
        private void OnAudioFilterRead(float[] data, int channels)
        {
            if (playback != VoicePlayback.FilterRead) return;
            JitterBuffer buffer = _buffer;
            int frames = data.Length / channels;
            if (buffer == null) return;
            if (_mono.Length < frames) _mono = new float[frames];
            int real = buffer.Read(_mono, 0, frames);
            Playout playout = _playout;
            if (playout != null) playout.Rendered(frames, real);
            for (int f = 0; f < frames; f++)
                for (int c = 0; c < channels; c++)
                    data[f * channels + c] = _mono[f];
        }

        private void Update()
        {
            JitterBuffer buffer = _buffer;
            bool speaking = buffer != null && buffer.IsActive;
            if (speaking != _speaking)
            {
                _speaking = speaking;
                onSpeakingChanged.Invoke(speaking);
            }
            Playout p = _playout;
            if (p != null && playback == VoicePlayback.StreamingClip && _source.clip != null)
            {
                // the clip's real play position (it loops: unwrap it), not its reads ahead
                int position = _source.timeSamples;
                int length = _source.clip.samples;
                _clipPlayed += ((position - _clipPosition) % length + length) % length;
                _clipPosition = position;
                p.Heard(_clipPlayed);
            }
            int heard = HeardMs;
            while (_sentences.Count > 0 && _sentences.Peek().AudioStartMs < heard)
            {
                NpcSentence s = _sentences.Dequeue();
                onSentenceStarted.Invoke(s.Text, s.AudioDurationMs);
            }
            while (_actions.Count > 0 && _actions.Peek().AudioStartMs < heard)
            {
                NpcAction a = _actions.Dequeue();
                onActionStarted.Invoke(a.Kind, a.Text);
            }
        }
    }
}
