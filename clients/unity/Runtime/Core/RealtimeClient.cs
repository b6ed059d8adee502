// The personae realtime client: one WebSocket session with the daemon, engine-agnostic.
//
//   var client = new RealtimeClient(new ClientOptions { Url = new Uri("ws://127.0.0.1:8765/v1/realtime") });
//   client.TextDelta += d => Console.Write(d.Delta);
//   client.Error += e => Console.WriteLine(e.Code + ": " + e.Message);
//   await client.ConnectAsync(ct);
//   await client.SayAsync("Bram, can you fix my sword?", null, ct);
//
// Callbacks run through ClientOptions.Dispatch (the Unity layer queues them onto the
// main thread); without one they run on the network thread. When the connection
// drops the client reports `connection_lost` through Error, reconnects with backoff
// and re-applies every session setting it was given. Unknown event types (a newer
// daemon) arrive as UnknownEvent and are otherwise ignored.
using System;
using System.Collections.Generic;
using System.IO;
using System.Net.WebSockets;
using System.Threading;
using System.Threading.Tasks;

namespace Personae
{
    public enum ConnectionState { Disconnected, Connecting, Connected, Reconnecting, Closed }

    public sealed class ClientOptions
    {
        public Uri Url = new Uri("ws://127.0.0.1:8765/v1/realtime");
        /// <summary>MsgPack (raw audio bytes, for games) or Json (base64 audio).</summary>
        public Framing Framing = Framing.MsgPack;
        public bool AutoReconnect = true;
        /// <summary>Connect attempts per (re)connect before giving up; 0 = keep trying.</summary>
        public int MaxAttempts = 0;
        public TimeSpan ReconnectInitialDelay = TimeSpan.FromMilliseconds(500);
        public TimeSpan ReconnectMaxDelay = TimeSpan.FromSeconds(15);
        /// <summary>Limit for the handshake plus the daemon's first `session.created`.</summary>
        public TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
        /// <summary>Largest frame accepted; a bigger one is reported and the connection reset.</summary>
        public int MaxFrameBytes = 16 * 1024 * 1024;
        /// <summary>Settings sent after every (re)connect; later UpdateSessionAsync calls merge in.</summary>
        public SessionConfig Session;
        /// <summary>Runs each callback; null runs them on the network thread.</summary>
        public Action<Action> Dispatch;
        /// <summary>Injectable randomness for reconnect jitter.</summary>
        public Random Random;
    }

    public sealed class RealtimeClient : IDisposable
    {
        private readonly ClientOptions _options;
        private readonly SessionConfig _session = new SessionConfig();
        private readonly SemaphoreSlim _sendLock = new SemaphoreSlim(1, 1);
        private readonly CancellationTokenSource _lifetime = new CancellationTokenSource();
        private readonly Backoff _backoff;
        private readonly object _gate = new object();
        private ClientWebSocket _ws;
        private Task _connecting;
        private volatile ConnectionState _state = ConnectionState.Disconnected;
        private volatile SessionInfo _info;
        private Task _receiving = Task.FromResult(true);
        private int _reconnects;
        private volatile bool _closing;
        private bool _disposed;

        // ---------------------------------------------------------------- callbacks

        /// <summary>Every event, known or not, in arrival order.</summary>
        public event Action<ServerEvent> EventReceived;
        /// <summary>Everything that went wrong: connection, frames, daemon `error` events.</summary>
        public event Action<PersonaeException> Error;
        public event Action<ConnectionState> StateChanged;
        /// <summary>session.created or session.updated: the settings the daemon now holds.</summary>
        public event Action<SessionInfo> SessionChanged;
        public event Action<NpcRoute> Routed;
        public event Action<SpeechStarted> SpeechStarted;
        public event Action<SpeechStopped> SpeechStopped;
        /// <summary>Partial transcript of the player's turn, while they speak.</summary>
        public event Action<TranscriptionDelta> PartialTranscript;
        public event Action<TranscriptionCompleted> Transcript;
        public event Action<ResponseInfo> ResponseStarted;
        public event Action<OutputTextDelta> TextDelta;
        public event Action<NpcSentence> Sentence;
        /// <summary>Lip-sync: visemes and word timings of the audio chunk that follows (feed a VisemeTrack).</summary>
        public event Action<NpcViseme> VisemeReceived;
        /// <summary>A character's feelings changed (dominant emotion, blend, trust, affinity).</summary>
        public event Action<NpcEmotion> Emotion;
        /// <summary>A stage direction in a reply (gesture or tone), to animate, never to speak.</summary>
        public event Action<NpcAction> ActionReceived;
        /// <summary>The daemon's monitor says a character is drifting out of character.</summary>
        public event Action<NpcAlert> Alert;
        /// <summary>Characters start talking to each other (after ConverseAsync).</summary>
        public event Action<NpcExchangeStarted> ExchangeStarted;
        /// <summary>A line of the exchange is over: who said it, with which adapter, what was heard.</summary>
        public event Action<NpcExchangeLine> ExchangeLine;
        /// <summary>The exchange is over: finished, interrupted (the player joined in) or error.</summary>
        public event Action<NpcExchangeDone> ExchangeDone;
        public event Action<OutputAudioDelta> AudioDelta;
        public event Action<OutputAudioDone> AudioDone;
        public event Action<ResponseInfo> ResponseDone;
        /// <summary>An event type this client does not know (a newer daemon); safe to ignore.</summary>
        public event Action<UnknownEvent> UnknownEvent;

        public RealtimeClient(ClientOptions options)
        {
            if (options == null) throw new ArgumentNullException("options");
            if (options.Url == null) throw new ArgumentException("options.Url is required");
            _options = options;
            if (options.Session != null) _session.MergeFrom(options.Session);
            _backoff = new Backoff(options.ReconnectInitialDelay, options.ReconnectMaxDelay, options.Random);
        }

        public ConnectionState State { get { return _state; } }

        /// <summary>The session as the daemon last described it; null before the first connect.</summary>
        public SessionInfo Session { get { return _info; } }

        /// <summary>How many times the client has reconnected after losing a connection.</summary>
        public int Reconnects { get { return Volatile.Read(ref _reconnects); } }

        public bool IsConnected { get { return _state == ConnectionState.Connected; } }

        // ---------------------------------------------------------------- connecting

        /// <summary>
        /// Connects and waits for the daemon's `session.created`. Each failed attempt is
        /// reported through Error (`connect_failed`); with AutoReconnect it retries with
        /// backoff until connected, MaxAttempts is reached or <paramref name="ct"/> is cancelled.
        /// </summary>
        public Task ConnectAsync(CancellationToken ct)
        {
            ThrowIfDisposed();
            Task running;
            lock (_gate)
            {
                if (_state == ConnectionState.Connected) return Task.FromResult(true);
                if (_connecting == null || _connecting.IsCompleted)
                    _connecting = ConnectLoopAsync(ConnectionState.Connecting, ct);
                running = _connecting;
            }
            return running;
        }

        private async Task ConnectLoopAsync(ConnectionState phase, CancellationToken ct)
        {
            using (var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _lifetime.Token))
            {
                int attempts = 0;
                while (true)
                {
                    SetState(phase);
                    attempts++;
                    try
                    {
                        await OpenAsync(linked.Token).ConfigureAwait(false);
                        _backoff.Reset();
                        return;
                    }
                    catch (OperationCanceledException) when (linked.IsCancellationRequested)
                    {
                        SetState(_disposed ? ConnectionState.Closed : ConnectionState.Disconnected);
                        throw;
                    }
                    catch (Exception exc)
                    {
                        var error = exc as PersonaeException
                            ?? new PersonaeException(ErrorCodes.ConnectFailed,
                                "cannot reach the daemon at " + _options.Url + ": " + Describe(exc), exc, retryable: true);
                        Report(error);
                        bool retry = _options.AutoReconnect && (_options.MaxAttempts <= 0 || attempts < _options.MaxAttempts);
                        if (!retry)
                        {
                            SetState(ConnectionState.Disconnected);
                            throw error;
                        }
                    }
                    try
                    {
                        await Task.Delay(_backoff.Next(), linked.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        SetState(_disposed ? ConnectionState.Closed : ConnectionState.Disconnected);
                        throw;
                    }
                }
            }
        }

        private async Task OpenAsync(CancellationToken ct)
        {
            var ws = new ClientWebSocket();
            ws.Options.AddSubProtocol(Protocol.Subprotocol);
            ws.Options.KeepAliveInterval = TimeSpan.FromSeconds(20);
            try
            {
                using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
                {
                    timeout.CancelAfter(_options.ConnectTimeout);
                    try
                    {
                        await ws.ConnectAsync(_options.Url, timeout.Token).ConfigureAwait(false);
                        // The daemon speaks first: session.created, before the client says anything.
                        ServerEvent first = await ReceiveEventAsync(ws, timeout.Token).ConfigureAwait(false);
                        var created = first as SessionCreated;
                        if (created == null)
                            throw new PersonaeException(ErrorCodes.ConnectFailed,
                                "expected session.created first, got " + (first == null ? "a close" : first.Type), null, true);
                        _info = created.Session;
                        if (!_session.IsEmpty)
                            await SendOnAsync(ws, new SessionUpdate { Session = CopySession() }, timeout.Token).ConfigureAwait(false);
                        lock (_gate) { _ws = ws; }
                        SetState(ConnectionState.Connected);
                        RaiseEvent(created);
                    }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                    {
                        throw new PersonaeException(ErrorCodes.ConnectFailed,
                            "no session from " + _options.Url + " within " + _options.ConnectTimeout.TotalSeconds + " s", null, true);
                    }
                }
            }
            catch
            {
                ws.Abort();
                ws.Dispose();
                throw;
            }
            _receiving = Task.Run(() => ReceiveLoopAsync(ws));
        }

        private SessionConfig CopySession()
        {
            var copy = new SessionConfig();
            lock (_gate) copy.MergeFrom(_session);
            return copy;
        }

        // ---------------------------------------------------------------- receiving

        private async Task ReceiveLoopAsync(ClientWebSocket ws)
        {
            CancellationToken token = _lifetime.Token;
            PersonaeException lost = null;
            var buffer = new byte[16 * 1024]; // reused for every frame of this connection
            var message = new MemoryStream();
            try
            {
                while (!token.IsCancellationRequested)
                {
                    ServerEvent e;
                    try
                    {
                        e = await ReceiveEventAsync(ws, buffer, message, token).ConfigureAwait(false);
                    }
                    catch (PersonaeException bad) when (bad.Code == ErrorCodes.MalformedFrame || bad.Code == ErrorCodes.InvalidEvent)
                    {
                        Report(bad); // one bad frame: report it and keep the session
                        continue;
                    }
                    if (e == null)
                    {
                        lost = new PersonaeException(ErrorCodes.ConnectionLost,
                            "the daemon closed the connection (" + ws.CloseStatus + " " + ws.CloseStatusDescription + ")", null, true);
                        break;
                    }
                    RaiseEvent(e);
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exc)
            {
                if (token.IsCancellationRequested) return;
                lost = exc as PersonaeException
                    ?? new PersonaeException(ErrorCodes.ConnectionLost, "connection to the daemon lost: " + Describe(exc), exc, true);
            }
            lock (_gate)
            {
                if (_ws == ws) _ws = null;
            }
            ws.Abort();
            ws.Dispose();
            if (token.IsCancellationRequested || lost == null || _closing) return;
            Report(lost);
            if (!_options.AutoReconnect)
            {
                SetState(ConnectionState.Disconnected);
                return;
            }
            try
            {
                Task reconnect;
                lock (_gate)
                {
                    _connecting = ConnectLoopAsync(ConnectionState.Reconnecting, CancellationToken.None);
                    reconnect = _connecting;
                }
                await reconnect.ConfigureAwait(false);
                Interlocked.Increment(ref _reconnects);
            }
            catch (OperationCanceledException) { }
            catch (PersonaeException) { } // already reported; MaxAttempts reached
        }

        /// <summary>The next whole message as an event; null when the peer closed.</summary>
        private async Task<ServerEvent> ReceiveEventAsync(ClientWebSocket ws, CancellationToken ct)
        {
            return await ReceiveEventAsync(ws, new byte[16 * 1024], new MemoryStream(), ct).ConfigureAwait(false);
        }

        private async Task<ServerEvent> ReceiveEventAsync(ClientWebSocket ws, byte[] buffer, MemoryStream message, CancellationToken ct)
        {
            message.SetLength(0);
            while (true)
            {
                WebSocketReceiveResult r = await ws.ReceiveAsync(new ArraySegment<byte>(buffer), ct).ConfigureAwait(false);
                if (r.MessageType == WebSocketMessageType.Close) return null;
                message.Write(buffer, 0, r.Count);
                if (message.Length > _options.MaxFrameBytes)
                    throw new PersonaeException(ErrorCodes.ConnectionLost, "frame larger than " + _options.MaxFrameBytes + " bytes");
                if (r.EndOfMessage)
                    return Frames.Decode(message.GetBuffer(), (int)message.Length, r.MessageType == WebSocketMessageType.Binary);
            }
        }

        private void RaiseEvent(ServerEvent e)
        {
            var created = e as SessionCreated;
            if (created != null) _info = created.Session;
            var updated = e as SessionUpdated;
            if (updated != null) _info = updated.Session;
            Dispatch(() => Route(e));
        }

        private void Route(ServerEvent e)
        {
            Invoke(EventReceived, e);
            if (e is SessionCreated) Invoke(SessionChanged, ((SessionCreated)e).Session);
            else if (e is SessionUpdated) Invoke(SessionChanged, ((SessionUpdated)e).Session);
            else if (e is NpcRoute) Invoke(Routed, (NpcRoute)e);
            else if (e is SpeechStarted) Invoke(SpeechStarted, (SpeechStarted)e);
            else if (e is SpeechStopped) Invoke(SpeechStopped, (SpeechStopped)e);
            else if (e is TranscriptionDelta) Invoke(PartialTranscript, (TranscriptionDelta)e);
            else if (e is TranscriptionCompleted) Invoke(Transcript, (TranscriptionCompleted)e);
            else if (e is ResponseCreated) Invoke(ResponseStarted, ((ResponseCreated)e).Response);
            else if (e is OutputTextDelta) Invoke(TextDelta, (OutputTextDelta)e);
            else if (e is NpcSentence) Invoke(Sentence, (NpcSentence)e);
            else if (e is NpcViseme) Invoke(VisemeReceived, (NpcViseme)e);
            else if (e is NpcEmotion) Invoke(Emotion, (NpcEmotion)e);
            else if (e is NpcAction) Invoke(ActionReceived, (NpcAction)e);
            else if (e is NpcAlert) Invoke(Alert, (NpcAlert)e);
            else if (e is NpcExchangeStarted) Invoke(ExchangeStarted, (NpcExchangeStarted)e);
            else if (e is NpcExchangeLine) Invoke(ExchangeLine, (NpcExchangeLine)e);
            else if (e is NpcExchangeDone) Invoke(ExchangeDone, (NpcExchangeDone)e);
            else if (e is OutputAudioDelta) Invoke(AudioDelta, (OutputAudioDelta)e);
            else if (e is OutputAudioDone) Invoke(AudioDone, (OutputAudioDone)e);
            else if (e is ResponseDone) Invoke(ResponseDone, ((ResponseDone)e).Response);
            else if (e is UnknownEvent) Invoke(UnknownEvent, (UnknownEvent)e);
            else if (e is ErrorEvent) RaiseError(new PersonaeException(((ErrorEvent)e).Error));
        }

        private void Invoke<T>(Action<T> handler, T arg)
        {
            if (handler == null) return;
            try { handler(arg); }
            catch (Exception exc)
            {
                RaiseError(new PersonaeException(ErrorCodes.CallbackFailed,
                    "a " + typeof(T).Name + " callback threw " + exc.GetType().Name + ": " + exc.Message, exc));
            }
        }

        private void Report(PersonaeException error) { Dispatch(() => RaiseError(error)); }

        private void RaiseError(PersonaeException error)
        {
            Action<PersonaeException> handler = Error;
            if (handler == null) return;
            try { handler(error); }
            catch (Exception) { /* an Error handler that throws has nowhere left to report to */ }
        }

        private void SetState(ConnectionState state)
        {
            if (_state == state) return;
            _state = state;
            Dispatch(() => Invoke(StateChanged, state));
        }

        private void Dispatch(Action action)
        {
            Action<Action> dispatch = _options.Dispatch;
            if (dispatch == null) action();
            else dispatch(action);
        }

        // ---------------------------------------------------------------- sending

        /// <summary>Sends one event; raises PersonaeException(`not_connected`) while disconnected.</summary>
        public async Task SendAsync(ClientEvent e, CancellationToken ct)
        {
            ThrowIfDisposed();
            ClientWebSocket ws;
            lock (_gate) ws = _ws;
            if (ws == null || ws.State != WebSocketState.Open || _state != ConnectionState.Connected)
                throw new PersonaeException(ErrorCodes.NotConnected, e.Type + " dropped: not connected (" + _state + ")", null, true);
            try
            {
                await SendOnAsync(ws, e, ct).ConfigureAwait(false);
            }
            catch (WebSocketException exc)
            {
                throw new PersonaeException(ErrorCodes.NotConnected, e.Type + " dropped: " + exc.Message, exc, true);
            }
            catch (ObjectDisposedException exc)
            {
                throw new PersonaeException(ErrorCodes.NotConnected, e.Type + " dropped: connection closed", exc, true);
            }
        }

        private async Task SendOnAsync(ClientWebSocket ws, ClientEvent e, CancellationToken ct)
        {
            byte[] frame = Frames.Encode(e, _options.Framing);
            var type = _options.Framing == Framing.MsgPack ? WebSocketMessageType.Binary : WebSocketMessageType.Text;
            await _sendLock.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                await ws.SendAsync(new ArraySegment<byte>(frame), type, true, ct).ConfigureAwait(false);
            }
            finally
            {
                _sendLock.Release();
            }
        }

        /// <summary>Changes session settings; they are kept and re-applied after a reconnect.</summary>
        public Task UpdateSessionAsync(SessionConfig config, CancellationToken ct)
        {
            lock (_gate) _session.MergeFrom(config);
            return SendAsync(new SessionUpdate { Session = config }, ct);
        }

        /// <summary>PCM16 mono at the session's input rate (Session.InputSampleRate).</summary>
        public Task AppendAudioAsync(byte[] pcm16, CancellationToken ct)
        {
            return SendAsync(new InputAudioBufferAppend { Audio = pcm16 }, ct);
        }

        /// <summary>Push-to-talk release: commit the buffered audio and, by default, ask for a reply.</summary>
        public async Task CommitAsync(bool respond, CancellationToken ct)
        {
            await SendAsync(new InputAudioBufferCommit(), ct).ConfigureAwait(false);
            if (respond) await SendAsync(new ResponseCreate(), ct).ConfigureAwait(false);
        }

        public Task ClearAudioAsync(CancellationToken ct) { return SendAsync(new InputAudioBufferClear(), ct); }

        /// <summary>A typed line from the player, then a reply (from <paramref name="character"/>, or routed).</summary>
        public async Task SayAsync(string text, string character, CancellationToken ct)
        {
            await SendAsync(new ConversationItemCreate { Item = ConversationItem.UserText(text) }, ct).ConfigureAwait(false);
            await SendAsync(new ResponseCreate { Response = new ResponseOptions { Character = character } }, ct).ConfigureAwait(false);
        }

        public Task RespondAsync(ResponseOptions options, CancellationToken ct)
        {
            return SendAsync(new ResponseCreate { Response = options ?? new ResponseOptions() }, ct);
        }

        public Task CancelResponseAsync(string responseId, CancellationToken ct)
        {
            return SendAsync(new ResponseCancel { ResponseId = responseId }, ct);
        }

        /// <summary>Tell the daemon how much of an assistant item the player actually heard.</summary>
        public Task TruncateAsync(string itemId, int audioEndMs, CancellationToken ct)
        {
            return SendAsync(new ConversationItemTruncate { ItemId = itemId, AudioEndMs = audioEndMs }, ct);
        }

        public Task SendGameEventAsync(GameEvent gameEvent, CancellationToken ct) { return SendAsync(gameEvent, ct); }

        /// <summary>Fire a trigger declared in a character's file (parameters may be null).</summary>
        public Task SendTriggerAsync(string character, string trigger, Dictionary<string, object> parameters, CancellationToken ct)
        {
            return SendAsync(new GameTrigger
            {
                Character = character, Trigger = trigger, Parameters = parameters ?? new Dictionary<string, object>(),
            }, ct);
        }

        /// <summary>Tell the character what became of its action (ActionStatus.Done, Refused or Failed).</summary>
        public Task SendActionResultAsync(string actionId, string status, string reason, CancellationToken ct)
        {
            return SendAsync(new GameActionResult { ActionId = actionId, Status = status, Reason = reason ?? "" }, ct);
        }

        /// <summary>The player rated a reply, from -1 (bad) to 1 (good).</summary>
        public Task SendFeedbackAsync(string character, double score, string responseId, CancellationToken ct)
        {
            return SendAsync(new NpcFeedback { Character = character, Score = score, ResponseId = responseId }, ct);
        }

        /// <summary>
        /// Characters in the scene talk to each other about <paramref name="topic"/>:
        /// <paramref name="lines"/> lines, the first character opening. The player's speech
        /// or text stops it.
        /// </summary>
        public Task ConverseAsync(System.Collections.Generic.IList<string> characters, string topic, int lines, CancellationToken ct)
        {
            return SendAsync(new NpcConverse { Characters = characters, Topic = topic, Lines = lines }, ct);
        }

        // ---------------------------------------------------------------- closing

        /// <summary>Closes politely (close handshake, waiting for the daemon's answer), then releases everything.</summary>
        public async Task CloseAsync(CancellationToken ct)
        {
            ClientWebSocket ws;
            Task receiving;
            lock (_gate)
            {
                ws = _ws;
                receiving = _receiving;
            }
            _closing = true;
            if (ws != null && ws.State == WebSocketState.Open)
            {
                try
                {
                    await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", ct).ConfigureAwait(false);
                    // The receive loop sees the daemon's close frame and ends.
                    await Task.WhenAny(receiving, Task.Delay(TimeSpan.FromSeconds(2), ct)).ConfigureAwait(false);
                }
                catch (WebSocketException) { }
                catch (ObjectDisposedException) { }
                catch (OperationCanceledException) { }
            }
            Dispose();
        }

        /// <summary>Stops reconnecting and drops the connection at once; never blocks.</summary>
        public void Dispose()
        {
            ClientWebSocket ws;
            lock (_gate)
            {
                if (_disposed) return;
                _disposed = true;
                ws = _ws;
                _ws = null;
            }
            _lifetime.Cancel();
            if (ws != null)
            {
                ws.Abort();
                ws.Dispose();
            }
            SetState(ConnectionState.Closed);
        }

        private void ThrowIfDisposed()
        {
            if (_disposed) throw new ObjectDisposedException("RealtimeClient");
        }

        private static string Describe(Exception exc)
        {
            Exception inner = exc;
            while (inner.InnerException != null) inner = inner.InnerException;
            return inner == exc ? exc.Message : exc.Message + " (" + inner.Message + ")";
        }
    }
}
