// Microphone capture for personae: reads Unity's looping microphone clip every frame,
// downmixes and resamples it to the session's input rate, and streams PCM16 to the
// daemon. Push-to-talk sends only while held and commits the turn on release;
// voice activity streams continuously and lets the daemon's VAD find the turns.
using System;
using System.Collections.Generic;
using System.Threading;
using UnityEngine;
using UnityEngine.Events;

namespace Personae.Unity
{
    public enum MicrophoneMode { PushToTalk, VoiceActivity }

    [Serializable] public sealed class LevelEvent : UnityEvent<float> { }

    [AddComponentMenu("personae/Personae Microphone")]
    public sealed class PersonaeMicrophone : MonoBehaviour
    {
        [SerializeField] private PersonaeClient client;
        [SerializeField] private MicrophoneMode mode = MicrophoneMode.PushToTalk;
        [Tooltip("Microphone device name; empty: the default device.")]
        [SerializeField] private string device = "";
#if ENABLE_LEGACY_INPUT_MANAGER
        [Tooltip("Hold to talk (legacy Input Manager). Call Press()/Release() from any other input system.")]
        [SerializeField] private KeyCode talkKey = KeyCode.T;
#endif
        [Range(20, 500)] [SerializeField] private int chunkMs = 100;

        /// <summary>RMS level of the latest block, 0..1: meters and "is talking" indicators.</summary>
        public LevelEvent onLevel = new LevelEvent();

        private readonly List<float> _pending = new List<float>();
        private AudioClip _clip;
        private int _lastPosition;
        private Resampler _resampler;
        private bool _talking;

        public MicrophoneMode Mode { get { return mode; } }

        public bool IsTalking { get { return _talking; } }

        public bool IsCapturing { get { return _clip != null; } }

        private void OnEnable()
        {
            if (client == null) client = PersonaeClient.FindInScene();
            if (client != null) client.EventReceived += OnEvent;
            StartCapture();
        }

        private void OnDisable()
        {
            if (client != null) client.EventReceived -= OnEvent;
            if (_clip != null) Microphone.End(DeviceName);
            _clip = null;
        }

        private string DeviceName { get { return string.IsNullOrEmpty(device) ? null : device; } }

        private void StartCapture()
        {
            if (Microphone.devices.Length == 0)
            {
                if (client != null) client.onError.Invoke("microphone", "no microphone found");
                return;
            }
            int min, max;
            Microphone.GetDeviceCaps(DeviceName, out min, out max);
            int rate = min == 0 && max == 0 ? 48000 : Mathf.Clamp(16000, min, max);
            _clip = Microphone.Start(DeviceName, true, 2, rate);
            _lastPosition = 0;
        }

        private void OnEvent(ServerEvent e)
        {
            // Each new session (first connect or reconnect) learns which mode we are in.
            if (e is SessionCreated)
                client.Observe(client.SetPushToTalkAsync(mode == MicrophoneMode.PushToTalk, CancellationToken.None), "microphone mode");
        }

        public void SetMode(MicrophoneMode value)
        {
            mode = value;
            _talking = false;
            _pending.Clear();
            if (client != null && client.IsConnected)
                client.Observe(client.SetPushToTalkAsync(mode == MicrophoneMode.PushToTalk, CancellationToken.None), "microphone mode");
        }

        /// <summary>Push-to-talk: the player starts talking.</summary>
        public void Press()
        {
            if (mode != MicrophoneMode.PushToTalk || _talking || client == null || !client.IsConnected) return;
            _talking = true;
            _pending.Clear();
            ReadMicrophone(false); // drop what was captured before the press
            client.StopAllVoices();
            client.Observe(client.Client.ClearAudioAsync(CancellationToken.None), "clear audio");
        }

        /// <summary>Push-to-talk: the player stopped; commit the turn and ask for a reply.</summary>
        public void Release()
        {
            if (!_talking) return;
            ReadMicrophone(true);
            Flush();
            _talking = false;
            client.Observe(client.Client.CommitAsync(true, CancellationToken.None), "commit");
        }

        private void Update()
        {
#if ENABLE_LEGACY_INPUT_MANAGER
            if (mode == MicrophoneMode.PushToTalk && talkKey != KeyCode.None)
            {
                if (Input.GetKeyDown(talkKey)) Press();
                if (Input.GetKeyUp(talkKey)) Release();
            }
#endif
            bool live = mode == MicrophoneMode.VoiceActivity || _talking;
            ReadMicrophone(live && client != null && client.IsConnected);
        }

        private void ReadMicrophone(bool send)
        {
            if (_clip == null) return;
            int position = Microphone.GetPosition(DeviceName);
            int count = (position - _lastPosition + _clip.samples) % _clip.samples;
            if (count == 0) return;
            var block = new float[count * _clip.channels];
            _clip.GetData(block, _lastPosition); // wraps around the looping clip
            _lastPosition = position;
            if (!send) return;
            float[] mono = Pcm16.Downmix(block, _clip.channels);
            onLevel.Invoke(Pcm16.Rms(mono, 0, mono.Length));
            int rate = client.Session != null ? client.Session.InputSampleRate : 16000;
            if (_resampler == null || _resampler.OutputRate != rate || _resampler.InputRate != _clip.frequency)
                _resampler = new Resampler(_clip.frequency, rate);
            _pending.AddRange(_resampler.Process(mono));
            if (_pending.Count >= rate * chunkMs / 1000) Flush();
        }

        private void Flush()
        {
            if (_pending.Count == 0 || client == null) return;
            byte[] pcm = Pcm16.FromFloat(_pending.ToArray());
            _pending.Clear();
            client.Observe(client.Client.AppendAudioAsync(pcm, CancellationToken.None), "send audio");
        }
    }
}
