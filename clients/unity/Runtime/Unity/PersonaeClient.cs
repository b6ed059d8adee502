// The Unity face of the personae client: a component that owns one RealtimeClient,
// raises every callback on the main thread, and routes each character's audio to
// the PersonaeVoice registered for it.
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using UnityEngine;
using UnityEngine.Events;

namespace Personae.Unity
{
    [Serializable] public sealed class StringEvent : UnityEvent<string> { }
    [Serializable] public sealed class RouteEvent : UnityEvent<string, string> { }            // character, reason
    [Serializable] public sealed class LineEvent : UnityEvent<string, string> { }             // character, text
    [Serializable] public sealed class SentenceEvent : UnityEvent<string, string, int, int> { } // character, text, start ms, duration ms
    [Serializable] public sealed class ActionEvent : UnityEvent<string, string, string> { }   // character, kind, text
    [Serializable] public sealed class AlertEvent : UnityEvent<string, string, float> { }    // character, signal, rolling score
    [Serializable] public sealed class EmotionEvent : UnityEvent<string, string, float> { }    // character, dominant, intensity
    [Serializable] public sealed class ExchangeEvent : UnityEvent<string, string> { }         // exchange id, characters (comma-separated) or reason
    [Serializable] public sealed class PersonaeErrorEvent : UnityEvent<string, string> { }    // code, message

    [DisallowMultipleComponent]
    [AddComponentMenu("personae/Personae Client")]
    public sealed class PersonaeClient : MonoBehaviour
    {
        [Header("Daemon")]
        [SerializeField] private string url = "ws://127.0.0.1:8765/v1/realtime";
        [Tooltip("MsgPack sends raw PCM (smaller, faster); Json is for debugging with browser tools.")]
        [SerializeField] private Framing framing = Framing.MsgPack;
        [SerializeField] private bool connectOnStart = true;
        [SerializeField] private bool autoReconnect = true;

        [Header("Session")]
        [Tooltip("Characters in the scene, who can hear the player. Empty: every character the daemon has.")]
        [SerializeField] private List<string> characters = new List<string>();
        [Tooltip("Always answer with this character (empty: the router decides).")]
        [SerializeField] private string pinnedCharacter = "";
        [Tooltip("Stable player identity, for per-player character state.")]
        [SerializeField] private string playerId = "";

        [Header("Callbacks (main thread)")]
        public RouteEvent onRouted = new RouteEvent();
        public StringEvent onTranscript = new StringEvent();
        /// <summary>The player's words so far, growing while they speak (before onTranscript).</summary>
        public StringEvent onPartialTranscript = new StringEvent();
        private readonly System.Text.StringBuilder _heard = new System.Text.StringBuilder();
        public LineEvent onTextDelta = new LineEvent();
        public SentenceEvent onSentence = new SentenceEvent();
        public LineEvent onResponseDone = new LineEvent();
        public EmotionEvent onEmotion = new EmotionEvent();
        /// <summary>A stage direction as it arrives; PersonaeVoice.onActionStarted fires it in time with the audio.</summary>
        public ActionEvent onAction = new ActionEvent();
        /// <summary>The daemon's monitor: a character is drifting out of character (for dashboards and logs).</summary>
        public AlertEvent onAlert = new AlertEvent();
        /// <summary>Characters started talking to each other: exchange id, who (comma-separated).</summary>
        public ExchangeEvent onExchangeStarted = new ExchangeEvent();
        /// <summary>Their exchange is over: exchange id, reason ("finished", "interrupted", "error").</summary>
        public ExchangeEvent onExchangeDone = new ExchangeEvent();
        public PersonaeErrorEvent onError = new PersonaeErrorEvent();

        private readonly CallbackQueue _mainThread = new CallbackQueue();
        private readonly Dictionary<string, PersonaeVoice> _voices = new Dictionary<string, PersonaeVoice>();
        private readonly HashSet<string> _responding = new HashSet<string>();
        private CancellationTokenSource _lifetime;
        private RealtimeClient _client;

        /// <summary>The core client, for everything the component does not wrap. Callbacks run on the main thread.</summary>
        public RealtimeClient Client { get { return _client; } }

        public ConnectionState State { get { return _client != null ? _client.State : ConnectionState.Disconnected; } }

        public SessionInfo Session { get { return _client != null ? _client.Session : null; } }

        public bool IsConnected { get { return _client != null && _client.IsConnected; } }

        /// <summary>The first active PersonaeClient in the loaded scenes, or null.</summary>
        public static PersonaeClient FindInScene()
        {
#if UNITY_2023_1_OR_NEWER
            return FindFirstObjectByType<PersonaeClient>();
#else
            return FindObjectOfType<PersonaeClient>();
#endif
        }

        /// <summary>Fires for every protocol event, on the main thread (including UnknownEvent).</summary>
        public event Action<ServerEvent> EventReceived;

        private void Awake()
        {
            _lifetime = new CancellationTokenSource();
            Uri daemon;
            if (!Uri.TryCreate(url, UriKind.Absolute, out daemon) || (daemon.Scheme != "ws" && daemon.Scheme != "wss"))
            {
                Debug.LogError("personae: '" + url + "' is not a ws:// or wss:// URL", this);
                enabled = false;
                return;
            }
            var session = new SessionConfig();
            if (characters.Count > 0) session.Characters = characters;
            if (!string.IsNullOrEmpty(pinnedCharacter)) session.PinnedCharacter = pinnedCharacter;
            if (!string.IsNullOrEmpty(playerId)) session.PlayerId = playerId;
            _client = new RealtimeClient(new ClientOptions
            {
                Url = daemon,
                Framing = framing,
                AutoReconnect = autoReconnect,
                Session = session,
                Dispatch = _mainThread.Post,
            });
            _client.EventReceived += e => { if (EventReceived != null) EventReceived(e); };
            _client.Routed += r => onRouted.Invoke(r.CharacterId, r.Reason);
            _client.PartialTranscript += d => onPartialTranscript.Invoke(_heard.Append(d.Delta).ToString());
            _client.Transcript += t => { _heard.Length = 0; onTranscript.Invoke(t.Transcript); };
            _client.TextDelta += d => onTextDelta.Invoke(d.CharacterId, d.Delta);
            _client.Sentence += OnSentence;
            _client.AudioDelta += OnAudio;
            _client.AudioDone += d => WithVoice(d.CharacterId, v => v.EndOfResponse());
            _client.SpeechStarted += _ => StopAllVoices(false); // barge-in: the daemon cancels, we stop playing
            _client.ResponseStarted += r => { if (r != null && r.Id != null) _responding.Add(r.Id); };
            _client.ResponseDone += OnResponseDone;
            _client.Emotion += e => onEmotion.Invoke(e.CharacterId, e.Dominant, (float)e.Intensity);
            _client.Alert += a => onAlert.Invoke(a.CharacterId, a.Signal, (float)a.Rolling);
            _client.ExchangeStarted += x => onExchangeStarted.Invoke(x.ExchangeId, string.Join(",", x.Characters.ToArray()));
            _client.ExchangeDone += x => onExchangeDone.Invoke(x.ExchangeId, x.Reason);
            _client.ActionReceived += a =>
            {
                onAction.Invoke(a.CharacterId, a.Kind, a.Text);
                WithVoice(a.CharacterId, v => v.QueueAction(a));
            };
            _client.Error += OnClientError;
        }

        private void OnClientError(PersonaeException e)
        {
            // The reply in flight is gone: let every voice play out what it already has.
            if (e.Code == ErrorCodes.ConnectionLost)
                foreach (PersonaeVoice voice in _voices.Values) voice.EndOfResponse();
            onError.Invoke(e.Code, e.Message);
        }

        private void Start()
        {
            if (_client != null && connectOnStart) Connect();
        }

        private void Update()
        {
            _mainThread.Drain();
        }

        private void OnDestroy()
        {
            if (_lifetime != null) _lifetime.Cancel();
            if (_client != null) _client.Dispose();
            _mainThread.Drain(); // let Closed reach listeners
        }

        // ---------------------------------------------------------------- voices

        /// <summary>Called by PersonaeVoice.OnEnable; one voice per character id.</summary>
        public void Register(PersonaeVoice voice)
        {
            PersonaeVoice existing;
            if (_voices.TryGetValue(voice.CharacterId, out existing) && existing != voice)
                Debug.LogWarning("personae: two voices for '" + voice.CharacterId + "'; the newer one plays", voice);
            _voices[voice.CharacterId] = voice;
        }

        public void Unregister(PersonaeVoice voice)
        {
            PersonaeVoice existing;
            if (_voices.TryGetValue(voice.CharacterId, out existing) && existing == voice) _voices.Remove(voice.CharacterId);
        }

        public PersonaeVoice VoiceOf(string character)
        {
            PersonaeVoice voice;
            return character != null && _voices.TryGetValue(character, out voice) ? voice : null;
        }

        private void WithVoice(string character, Action<PersonaeVoice> action)
        {
            PersonaeVoice voice = VoiceOf(character);
            if (voice != null) action(voice);
        }

        private void OnAudio(OutputAudioDelta delta)
        {
            int rate = Session != null ? Session.OutputSampleRate : 24000;
            PersonaeVoice voice = VoiceOf(delta.CharacterId);
            if (voice != null) voice.Enqueue(delta.ItemId, delta.Delta, rate);
        }

        private void OnSentence(NpcSentence s)
        {
            onSentence.Invoke(s.CharacterId, s.Text, s.AudioStartMs, s.AudioDurationMs);
            WithVoice(s.CharacterId, v => v.QueueSentence(s));
        }

        private void OnResponseDone(ResponseInfo response)
        {
            if (response.Id != null) _responding.Remove(response.Id);
            if (response.Status == "cancelled") WithVoice(response.Character, v => v.Stop());
            onResponseDone.Invoke(response.Character, response.OutputText);
        }

        /// <summary>Stops every voice now and tells the daemon what the player heard. A reply
        /// still being generated is cancelled first (<paramref name="cancelReply"/>), so generation
        /// stops before the truncate. Barge-in passes false: the daemon cancels that reply itself.</summary>
        public void StopAllVoices(bool cancelReply = true)
        {
            var heard = new List<ConversationItemTruncate>();
            foreach (PersonaeVoice voice in _voices.Values)
            {
                ConversationItemTruncate cut = voice.Stop();
                if (cut != null) heard.Add(cut);
            }
            if (!IsConnected) return;
            if (cancelReply && _responding.Count > 0)
            {
                // one reply generates at a time; the daemon cancels whichever it is
                Observe(Client.CancelResponseAsync(null, CancellationToken.None), "cancel");
                _responding.Clear();
            }
            // as OpenAI's clients do: the daemon remembers only what the player heard
            foreach (ConversationItemTruncate cut in heard)
                Observe(Client.TruncateAsync(cut.ItemId, cut.AudioEndMs, CancellationToken.None), "truncate");
        }

        // ---------------------------------------------------------------- async API

        public Task ConnectAsync(CancellationToken ct) { return Live().ConnectAsync(ct); }

        public Task SayAsync(string text, string character, CancellationToken ct) { return Live().SayAsync(text, character, ct); }

        public Task SetSceneAsync(IList<string> ids, CancellationToken ct)
        {
            return Live().UpdateSessionAsync(new SessionConfig { Characters = ids }, ct);
        }

        /// <summary>Push-to-talk (true) or the daemon's voice-activity detection (false).</summary>
        public Task SetPushToTalkAsync(bool pushToTalk, CancellationToken ct)
        {
            var config = new SessionConfig { TurnDetection = pushToTalk ? null : new TurnDetection() };
            return Live().UpdateSessionAsync(config, ct);
        }

        public Task SendGameEventAsync(string name, string description, CancellationToken ct)
        {
            return Live().SendGameEventAsync(new GameEvent { Name = name, Description = description }, ct);
        }

        /// <summary>Characters in the scene talk to each other; their lines play through their voices.</summary>
        public Task ConverseAsync(IList<string> ids, string topic, int lines, CancellationToken ct)
        {
            return Live().ConverseAsync(ids, topic, lines, ct);
        }

        /// <summary>Fire a trigger declared in a character's file.</summary>
        public Task SendTriggerAsync(string character, string trigger, Dictionary<string, object> parameters, CancellationToken ct)
        {
            return Live().SendTriggerAsync(character, trigger, parameters, ct);
        }

        /// <summary>Tell the character what became of its action (ActionStatus.Done, Refused or Failed).</summary>
        public Task SendActionResultAsync(string actionId, string status, string reason, CancellationToken ct)
        {
            return Live().SendActionResultAsync(actionId, status, reason, ct);
        }

        private RealtimeClient Live()
        {
            if (_client == null)
                throw new PersonaeException(ErrorCodes.NotConnected, "PersonaeClient is disabled: check its URL");
            return _client;
        }

        // ---------------------------------------------------------------- fire and forget

        /// <summary>For UI buttons: say a line; failures go to onError, never to an unobserved task.</summary>
        public void Say(string text) { Run(() => SayAsync(text, null, _lifetime.Token), "say"); }

        public void Connect() { Run(() => ConnectAsync(_lifetime.Token), "connect"); }

        /// <summary>The player rated a character's reply, -1 (bad) .. 1 (good); feeds the daemon's A/B metrics.</summary>
        public void SendFeedback(string character, float score, string responseId)
        {
            Run(() => Live().SendFeedbackAsync(character, score, responseId, _lifetime.Token), "feedback");
        }

        /// <summary>For UI and triggers: two or more characters talk about <paramref name="topic"/>.</summary>
        public void Converse(string topic, int lines, params string[] ids)
        {
            Run(() => ConverseAsync(ids, topic, lines, _lifetime.Token), "converse");
        }

        public void CancelResponse() { Run(() => Live().CancelResponseAsync(null, _lifetime.Token), "cancel"); }

        private void Run(Func<Task> start, string what)
        {
            Task task;
            try { task = start(); }
            catch (PersonaeException e) { onError.Invoke(e.Code, what + ": " + e.Message); return; }
            Observe(task, what);
        }

        /// <summary>Runs a task to completion off the caller's frame and reports its failure on the main thread.</summary>
        public void Observe(Task task, string what)
        {
            task.ContinueWith(t =>
            {
                Exception error = t.Exception != null ? t.Exception.GetBaseException() : null;
                if (error == null || error is OperationCanceledException) return;
                var personae = error as PersonaeException;
                // connect failures were already reported through the client's Error callback
                if (personae != null && personae.Code == ErrorCodes.ConnectFailed) return;
                string code = personae != null ? personae.Code : "client_error";
                _mainThread.Post(() => onError.Invoke(code, what + ": " + error.Message));
            }, TaskContinuationOptions.ExecuteSynchronously);
        }
    }
}
