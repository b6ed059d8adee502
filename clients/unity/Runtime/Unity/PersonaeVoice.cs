// One character's voice: audio deltas for that character go into a jitter buffer and
// play through this GameObject's AudioSource, either as a streaming AudioClip (default;
// Unity resamples and spatialises it like any clip) or from OnAudioFilterRead.
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
    public sealed class PersonaeVoice : MonoBehaviour
    {
        [SerializeField] private PersonaeClient client;
        [Tooltip("The character id this voice plays, e.g. \"bram\".")]
        [SerializeField] private string characterId = "";
        [SerializeField] private VoicePlayback playback = VoicePlayback.StreamingClip;
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
        private readonly Queue<NpcAction> _actions = new Queue<NpcAction>();
        private volatile JitterBuffer _buffer;
        private Resampler _resampler;
        private AudioSource _source;
        private int _rate;
        private int _bufferRate;
        private int _deviceRate;
        private float[] _mono = new float[0];
        private string _itemId;
        private long _itemStart;
        private bool _speaking;

        public string CharacterId { get { return characterId; } set { characterId = value; } }

        public bool IsSpeaking { get { return _speaking; } }

        /// <summary>Milliseconds of the current reply the player has heard (for truncation after a barge-in).</summary>
        public int HeardMs
        {
            get
            {
                JitterBuffer b = _buffer;
                return b == null || _bufferRate == 0 ? 0 : (int)((b.Played - _itemStart) * 1000L / _bufferRate);
            }
        }

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
            if (rate != _rate || _buffer == null) Rebuild(rate);
            JitterBuffer buffer = _buffer;
            if (itemId != _itemId)
            {
                _itemId = itemId;
                _itemStart = buffer.Played + buffer.Buffered;
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

        public void QueueSentence(NpcSentence sentence) { _sentences.Enqueue(sentence); }

        public void QueueAction(NpcAction action) { _actions.Enqueue(action); }

        /// <summary>Silence at once (barge-in, cancelled reply).</summary>
        public void Stop()
        {
            if (_buffer != null) _buffer.Clear();
            if (_resampler != null) _resampler.Reset();
            _sentences.Clear();
            _actions.Clear();
            _itemStart = 0;
        }

        private void Rebuild(int rate)
        {
            _rate = rate;
            _bufferRate = playback == VoicePlayback.FilterRead ? _deviceRate : rate;
            _resampler = playback == VoicePlayback.FilterRead && rate != _deviceRate ? new Resampler(rate, _deviceRate) : null;
            _buffer = new JitterBuffer(_bufferRate * maxBufferSeconds, _bufferRate * prebufferMs / 1000);
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
            if (buffer == null) Array.Clear(data, 0, data.Length);
            else buffer.Read(data, 0, data.Length);
        }

        // Audio thread: fill every channel with the mono voice.
        private void OnAudioFilterRead(float[] data, int channels)
        {
            if (playback != VoicePlayback.FilterRead) return;
            JitterBuffer buffer = _buffer;
            int frames = data.Length / channels;
            if (buffer == null) return;
            if (_mono.Length < frames) _mono = new float[frames];
            buffer.Read(_mono, 0, frames);
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
            int heard = HeardMs;
            while (_sentences.Count > 0 && _sentences.Peek().AudioStartMs <= heard)
            {
                NpcSentence s = _sentences.Dequeue();
                onSentenceStarted.Invoke(s.Text, s.AudioDurationMs);
            }
            while (_actions.Count > 0 && _actions.Peek().AudioStartMs <= heard)
            {
                NpcAction a = _actions.Dequeue();
                onActionStarted.Invoke(a.Kind, a.Text);
            }
        }
    }
}
