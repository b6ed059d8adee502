// Console harness for the Unity package's engine-agnostic core (clients/unity/Runtime/Core),
// compiled with Mono's mcs from the same sources. tests/clients/test_csharp.py drives it.
//
//   mono conversation.exe describe                 event names this client knows (JSON)
//   mono conversation.exe audit FRAMES             decode sample server frames, report unread/missing fields
//   mono conversation.exe client-samples OUT       write every client event, both framings, for the daemon's decoder
//   mono conversation.exe converse URL WAV         a real conversation: a text turn and an audio turn (msgpack)
//   mono conversation.exe recover URL              against a scripted server: unknown event, bad frame, drop mid-reply
//   mono conversation.exe unreachable URL          nobody listening: errors through the callback, retries, then gives up
//
// Callbacks are marshalled onto the main thread through a CallbackQueue that a
// "game loop" drains every few ms, the way the Unity layer does it; the harness checks
// that loop never stalls. Every line printed is JSON; the last is {"result": "ok", ...}
// or the process exits 1 with {"result": "fail", "reason": ...}.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Personae;

internal sealed class CheckFailed : Exception
{
    public CheckFailed(string message) : base(message) { }
}

internal static class Program
{
    private static int Main(string[] args)
    {
        try
        {
            switch (args.Length > 0 ? args[0] : "")
            {
                case "describe": Describe(); break;
                case "audit": Audit(args[1]); break;
                case "client-samples": ClientSamples(args[1]); break;
                case "converse": new Harness(args[1]).Converse(args[2]); break;
                case "recover": new Harness(args[1]).Recover(); break;
                case "unreachable": new Harness(args[1]).Unreachable(); break;
                default:
                    Console.Error.WriteLine("usage: conversation.exe describe|audit|client-samples|converse|recover|unreachable ...");
                    return 2;
            }
            return 0;
        }
        catch (Exception exc)
        {
            var reason = exc is CheckFailed ? exc.Message : exc.ToString();
            Console.WriteLine(Json.Serialize(new Dictionary<string, object> { { "result", "fail" }, { "reason", reason } }));
            return 1;
        }
    }

    private static void Describe()
    {
        Print(new Dictionary<string, object>
        {
            { "server", EventTypes.Server.Cast<object>().ToList() },
            { "client", EventTypes.Client.Cast<object>().ToList() },
            { "protocol_version", Protocol.Version },
            { "subprotocol", Protocol.Subprotocol },
        });
    }

    // Frames file: repeated [1 byte: 1 = msgpack, 0 = JSON][4 bytes little-endian length][frame].
    private static void Audit(string path)
    {
        byte[] data = File.ReadAllBytes(path);
        int pos = 0;
        while (pos < data.Length)
        {
            bool binary = data[pos] == 1;
            int length = BitConverter.ToInt32(data, pos + 1);
            var frame = new byte[length];
            Buffer.BlockCopy(data, pos + 5, frame, 0, length);
            pos += 5 + length;
            var audit = new FieldAudit();
            ServerEvent e = Frames.Decode(frame, length, binary, audit);
            var line = new Dictionary<string, object>
            {
                { "type", e.Type }, { "class", e.GetType().Name }, { "framing", binary ? "msgpack" : "json" },
                { "unread", audit.Unread.Cast<object>().ToList() }, { "missing", audit.Missing.Cast<object>().ToList() },
                { "character", e.Character },
            };
            var audio = e as OutputAudioDelta;
            if (audio != null) line["audio_bytes"] = audio.Delta.Length;
            Print(line);
        }
    }

    private static void ClientSamples(string path)
    {
        var scene = new List<string> { "bram", "mara" };
        var events = new List<ClientEvent>
        {
            new SessionUpdate
            {
                EventId = "evt_1",
                Session = new SessionConfig
                {
                    Characters = scene, PinnedCharacter = "bram", InputSampleRate = 16000, OutputSampleRate = 24000,
                    OutputModalities = new[] { "text", "audio" }, PlayerId = "player-1",
                    TurnDetection = new TurnDetection { Threshold = 0.5, SilenceDurationMs = 500, PrefixPaddingMs = 300, CreateResponse = true, InterruptResponse = false },
                },
            },
            new SessionUpdate { Session = new SessionConfig { TurnDetection = null } },
            new InputAudioBufferAppend { Audio = new byte[] { 1, 0, 255, 127 } },
            new InputAudioBufferCommit(),
            new InputAudioBufferClear(),
            new ConversationItemCreate { Item = ConversationItem.UserText("Hello, Bram.") },
            new ConversationItemTruncate { ItemId = "item_1", ContentIndex = 0, AudioEndMs = 1200 },
            new ResponseCreate { Response = new ResponseOptions { Character = "mara", OutputModalities = new[] { "text" }, Instructions = "Greet the player." } },
            new ResponseCancel { ResponseId = "resp_1" },
            new GameEvent
            {
                Name = "door_opened", Description = "The forge door bangs open.", Characters = scene,
                Data = new Dictionary<string, object> { { "loudness", 0.8 }, { "by", "wind" } },
            },
            new NpcFeedback { ResponseId = "resp_1", Character = "bram", Score = 0.75, Comment = "Good answer." },
            new NpcConverse { Characters = scene, Topic = "the lights on the mill", Lines = 4 },
            new GameTrigger
            {
                Character = "bram", Trigger = "customer_enters",
                Parameters = new Dictionary<string, object> { { "name", "Ayla" } },
            },
            new GameActionResult { ActionId = "act_1", Status = ActionStatus.Refused, Reason = "no coin" },
        };
        using (var output = File.Create(path))
        {
            foreach (Framing framing in new[] { Framing.MsgPack, Framing.Json })
                foreach (ClientEvent e in events)
                {
                    byte[] frame = Frames.Encode(e, framing);
                    output.WriteByte(framing == Framing.MsgPack ? (byte)1 : (byte)0);
                    output.Write(BitConverter.GetBytes(frame.Length), 0, 4);
                    output.Write(frame, 0, frame.Length);
                }
        }
        Print(new Dictionary<string, object> { { "result", "ok" }, { "events", events.Count * 2 } });
    }

    internal static void Print(Dictionary<string, object> line)
    {
        Console.WriteLine(Json.Serialize(line));
        Console.Out.Flush();
    }
}

/// <summary>A client on a simulated game loop, recording everything its callbacks see.</summary>
internal sealed class Harness
{
    private readonly Uri _url;
    private readonly CallbackQueue _main = new CallbackQueue();
    private readonly List<ServerEvent> _events = new List<ServerEvent>();
    private readonly List<PersonaeException> _errors = new List<PersonaeException>();
    private readonly List<ConnectionState> _states = new List<ConnectionState>();
    private readonly int _mainThread = Thread.CurrentThread.ManagedThreadId;
    private int _offThread;
    private double _worstTickMs;
    private RealtimeClient _client;

    public Harness(string url) { _url = new Uri(url); }

    private RealtimeClient NewClient(ClientOptions options)
    {
        options.Url = _url;
        options.Dispatch = _main.Post;
        var client = new RealtimeClient(options);
        client.EventReceived += e => { Check(); _events.Add(e); };
        client.Error += e =>
        {
            Check();
            _errors.Add(e);
            Program.Print(new Dictionary<string, object> { { "error", e.Code }, { "message", e.Message } });
        };
        client.StateChanged += s => { Check(); _states.Add(s); };
        return client;
    }

    private void Check()
    {
        if (Thread.CurrentThread.ManagedThreadId != _mainThread) _offThread++;
    }

    /// <summary>Runs the game loop until <paramref name="done"/> holds; fails after <paramref name="seconds"/>.</summary>
    private void Pump(Func<bool> done, double seconds, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!done())
        {
            if (clock.Elapsed.TotalSeconds > seconds) throw new CheckFailed("timed out after " + seconds + " s waiting for " + what);
            var tick = Stopwatch.StartNew();
            _main.Drain();
            _worstTickMs = Math.Max(_worstTickMs, tick.Elapsed.TotalMilliseconds);
            Thread.Sleep(5);
        }
        _main.Drain();
    }

    private void Await(Task task, double seconds, string what)
    {
        Pump(() => task.IsCompleted, seconds, what);
        if (task.IsFaulted) throw task.Exception.InnerException;
    }

    private static void Expect(bool condition, string message)
    {
        if (!condition) throw new CheckFailed(message);
    }

    private List<T> Of<T>(int from) where T : ServerEvent
    {
        return _events.Skip(from).OfType<T>().ToList();
    }

    private void FinishChecks(Dictionary<string, object> result)
    {
        Expect(_offThread == 0, _offThread + " callbacks ran off the main thread");
        Expect(_worstTickMs < 250, "the game loop stalled for " + _worstTickMs.ToString("F0") + " ms");
        result["result"] = "ok";
        result["worst_tick_ms"] = Math.Round(_worstTickMs, 1);
        result["errors"] = _errors.Select(e => (object)e.Code).ToList();
        Program.Print(result);
    }

    // ------------------------------------------------------------------ converse

    public void Converse(string wavPath)
    {
        var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var ct = cts.Token;
        var scene = new List<string> { "bram", "mara" };
        _client = NewClient(new ClientOptions
        {
            Framing = Framing.MsgPack,
            AutoReconnect = false,
            Session = new SessionConfig { Characters = scene },
        });
        using (_client)
        {
            Await(_client.ConnectAsync(ct), 60, "connect");
            Pump(() => _events.OfType<SessionUpdated>().Any(), 30, "session.updated");
            SessionInfo session = _client.Session;
            Expect(session.ProtocolVersion == Protocol.Version, "daemon speaks protocol " + session.ProtocolVersion);
            Expect(session.Characters != null && session.Characters.SequenceEqual(scene),
                "session characters " + Json.Serialize(session.Characters) + " != bram, mara");
            var result = new Dictionary<string, object> { { "session_id", session.Id } };

            // A typed turn addressed to Bram.
            int mark = _events.Count;
            Await(_client.SayAsync("Bram, can you fix my sword?", null, ct), 30, "send text turn");
            result["text_turn"] = Turn(mark, "text turn", 240);

            // A spoken turn: the WAV is resampled to the session's input rate by the core.
            mark = _events.Count;
            int wavRate;
            float[] voice = Wav.ReadMono(wavPath, out wavRate);
            var resampler = new Resampler(wavRate, session.InputSampleRate);
            int chunk = wavRate / 10; // 100 ms
            for (int i = 0; i < voice.Length; i += chunk)
            {
                int n = Math.Min(chunk, voice.Length - i);
                float[] part = resampler.Process(voice, i, n);
                Await(_client.AppendAudioAsync(Pcm16.FromFloat(part), ct), 10, "append audio");
            }
            byte[] silence = new byte[session.InputSampleRate / 10 * 2];
            for (int i = 0; i < 12; i++) Await(_client.AppendAudioAsync(silence, ct), 10, "append silence");
            var audio = Turn(mark, "audio turn", 240);
            var started = Of<SpeechStarted>(mark);
            var stopped = Of<SpeechStopped>(mark);
            var transcripts = Of<TranscriptionCompleted>(mark);
            Expect(started.Count >= 1 && stopped.Count >= 1, "no speech_started/speech_stopped for the audio turn");
            Expect(transcripts.Count == 1 && transcripts[0].Transcript.Trim().Length > 0, "no transcript for the audio turn");
            audio["transcript"] = transcripts[0].Transcript;
            audio["wav_rate"] = wavRate;
            result["audio_turn"] = audio;

            // Push-to-talk: no server VAD; the client commits the turn and asks for the reply.
            mark = _events.Count;
            Await(_client.UpdateSessionAsync(new SessionConfig { TurnDetection = null }, ct), 10, "push-to-talk on");
            Pump(() => Of<SessionUpdated>(mark).Any(), 30, "session.updated for push-to-talk");
            Expect(_client.Session.TurnDetection == null, "the daemon kept server VAD after turn_detection: null");
            Expect(_client.Session.Characters.SequenceEqual(scene), "a partial update reset the scene");
            mark = _events.Count;
            resampler.Reset();
            for (int i = 0; i < voice.Length; i += chunk)
            {
                float[] part = resampler.Process(voice, i, Math.Min(chunk, voice.Length - i));
                Await(_client.AppendAudioAsync(Pcm16.FromFloat(part), ct), 10, "append audio");
            }
            Await(_client.CommitAsync(true, ct), 10, "commit");
            var ptt = Turn(mark, "push-to-talk turn", 240);
            transcripts = Of<TranscriptionCompleted>(mark);
            Expect(transcripts.Count == 1 && transcripts[0].Transcript.Trim().Length > 0, "no transcript for the push-to-talk turn");
            Expect(!Of<SpeechStarted>(mark).Any(), "server VAD still ran in push-to-talk mode");
            ptt["transcript"] = transcripts[0].Transcript;
            result["push_to_talk_turn"] = ptt;

            Await(_client.CloseAsync(ct), 10, "close");
            Expect(_client.State == ConnectionState.Closed, "state after close: " + _client.State);
            FinishChecks(result);
        }
    }

    /// <summary>Waits for response.done and checks the whole reply; returns its summary.</summary>
    private Dictionary<string, object> Turn(int mark, string what, double seconds)
    {
        Pump(() => Of<ResponseDone>(mark).Any() || Of<ErrorEvent>(mark).Any(), seconds, what + " response.done");
        var errors = Of<ErrorEvent>(mark);
        Expect(errors.Count == 0, what + ": daemon error " + (errors.Count > 0 ? errors[0].Error.Code + " " + errors[0].Error.Message : ""));
        var routes = Of<NpcRoute>(mark);
        var created = Of<ResponseCreated>(mark);
        var deltas = Of<OutputTextDelta>(mark);
        var audio = Of<OutputAudioDelta>(mark);
        var sentences = Of<NpcSentence>(mark);
        var done = Of<ResponseDone>(mark).Single();
        string speaker = done.Response.Character;
        Expect(routes.Count == 1, what + ": expected one npc.route, got " + routes.Count);
        Expect(routes[0].CharacterId == speaker, what + ": routed to " + routes[0].CharacterId + " but " + speaker + " answered");
        Expect(routes[0].Scores.ContainsKey("bram") && routes[0].Scores.ContainsKey("mara"), what + ": route scores lack the scene");
        Expect(created.Count == 1 && created[0].Response.Id == done.Response.Id, what + ": response.created does not match response.done");
        Expect(done.Response.Status == "completed", what + ": response " + done.Response.Status + " (" + done.Response.StatusReason + ")");
        string text = string.Concat(deltas.Select(d => d.Delta));
        Expect(text.Trim().Length > 0, what + ": no text deltas");
        Expect(text == done.Response.OutputText, what + ": deltas '" + text + "' != output_text '" + done.Response.OutputText + "'");
        Expect(audio.Count > 0, what + ": no audio deltas");
        Expect(deltas.All(d => d.Character == speaker) && audio.All(a => a.Character == speaker) && sentences.All(s => s.Character == speaker),
            what + ": a response part names another character");
        Expect(audio.All(a => a.ResponseId == done.Response.Id), what + ": audio from another response");
        Expect(sentences.Count > 0, what + ": no npc.sentence");
        // lip-sync from the real TTS: a track that follows the reply's audio
        var visemes = Of<NpcViseme>(mark);
        Expect(visemes.Count > 0 && visemes.All(v => v.ResponseId == done.Response.Id && v.Character == speaker),
            what + ": no npc.viseme of this reply");
        var track = new VisemeTrack();
        foreach (var v in visemes) track.Add(v);
        var shapes = new HashSet<string>();
        for (int ms = 0; ms < done.Response.AudioSentMs; ms += 20) shapes.Add(track.At(ms));
        var sent = new HashSet<string>(visemes.SelectMany(v => v.Visemes).Select(v => v.Name)) { "sil" };
        // a short reply ("Aye, lad.") may need few shapes; the mouth still moves and shows only what was sent
        Expect(shapes.Count >= 3 && shapes.IsSubsetOf(sent), what + ": the mouth took " + shapes.Count + " shapes, not of the reply's visemes");
        Expect(visemes.SelectMany(v => v.Words).Any(), what + ": no word timings");

        // Play the reply through the jitter buffer and the output resampler, as a voice would.
        int rate = done.Response.OutputSampleRate ?? _client.Session.OutputSampleRate;
        var buffer = new JitterBuffer(rate * 60, rate / 10);
        var toDevice = new Resampler(rate, 48000);
        int bytes = 0;
        foreach (var a in audio)
        {
            bytes += a.Delta.Length;
            buffer.Write(Pcm16.ToFloat(a.Delta));
        }
        buffer.MarkEnded();
        var block = new float[1024];
        long played = 0, deviceSamples = 0;
        float peak = 0;
        int got;
        while ((got = buffer.Read(block, 0, block.Length)) > 0)
        {
            played += got;
            for (int i = 0; i < got; i++) peak = Math.Max(peak, Math.Abs(block[i]));
            deviceSamples += toDevice.Process(block, 0, got).Length;
        }
        int audioMs = Pcm16.DurationMs(bytes, rate);
        Expect(played == bytes / 2, what + ": jitter buffer played " + played + " of " + bytes / 2 + " samples");
        Expect(Math.Abs(deviceSamples - played * 2) <= 4, what + ": 24k->48k resampling gave " + deviceSamples + " for " + played);
        Expect(peak > 0.01f, what + ": the reply audio is silent");
        Expect(Math.Abs(audioMs - done.Response.AudioSentMs) <= 50,
            what + ": received " + audioMs + " ms of audio, daemon says it sent " + done.Response.AudioSentMs);
        return new Dictionary<string, object>
        {
            { "character", speaker }, { "reason", routes[0].Reason }, { "scores", routes[0].Scores.ToDictionary(kv => kv.Key, kv => (object)kv.Value) },
            { "text", text }, { "text_deltas", deltas.Count }, { "audio_deltas", audio.Count }, { "audio_ms", audioMs },
            { "sentences", sentences.Count }, { "status", done.Response.Status },
        };
    }

    // ------------------------------------------------------------------ recover

    public void Recover()
    {
        var cts = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var ct = cts.Token;
        var unknown = new List<UnknownEvent>();
        _client = NewClient(new ClientOptions
        {
            Framing = Framing.MsgPack,
            AutoReconnect = true,
            ReconnectInitialDelay = TimeSpan.FromMilliseconds(100),
            ReconnectMaxDelay = TimeSpan.FromMilliseconds(400),
            Session = new SessionConfig { Characters = new[] { "bram", "mara" } },
        });
        _client.UnknownEvent += e => unknown.Add(e);
        var emotions = new List<NpcEmotion>();
        _client.Emotion += e => emotions.Add(e);
        var alerts = new List<NpcAlert>();
        _client.Alert += a => alerts.Add(a);
        var actions = new List<NpcAction>();
        _client.ActionReceived += a => actions.Add(a);
        using (_client)
        {
            Await(_client.ConnectAsync(ct), 10, "connect");
            // The scripted server sends an unknown event, a broken frame, half a reply, then drops us.
            Pump(() => _errors.Any(e => e.Code == ErrorCodes.ConnectionLost), 10, "connection_lost");
            Expect(unknown.Count == 1 && unknown[0].Type == "npc.gaze", "the unknown npc.gaze event was not passed on as UnknownEvent");
            Expect(_errors.Count(e => e.Code == ErrorCodes.MalformedFrame) == 1, "the broken frame was not reported as malformed_frame");
            Expect(!_errors.Any(e => e.Message.Contains("npc.gaze")), "an unknown event was reported as an error");
            Expect(Of<OutputTextDelta>(0).Count == 1, "the half reply before the drop was lost");

            Pump(() => _client.Reconnects == 1 && _client.IsConnected, 10, "reconnect");
            Expect(_states.Contains(ConnectionState.Reconnecting), "never entered Reconnecting");
            int mark = _events.Count;
            Await(_client.SayAsync("Are you still there?", "bram", ct), 10, "send after reconnect");
            Pump(() => Of<ResponseDone>(mark).Any(), 10, "reply after reconnect");
            var done = Of<ResponseDone>(mark).Single();
            Expect(done.Response.Character == "bram" && done.Response.OutputText == "Still here.", "wrong reply after reconnect");
            Expect(emotions.Count == 1 && emotions[0].Character == "bram" && emotions[0].Dominant == "joy"
                && emotions[0].Trust == 0.25 && emotions[0].Affinity == null && emotions[0].Blend["joy"] == 0.6,
                "npc.emotion did not reach the Emotion callback intact");
            Expect(actions.Count == 1 && actions[0].Kind == "emotion" && actions[0].Text == "warm" && actions[0].AudioStartMs == 120
                && actions[0].Character == "bram", "npc.action did not reach the ActionReceived callback intact");

            Pump(() => alerts.Count == 1, 10, "npc.alert");
            Expect(alerts[0].Character == "bram" && alerts[0].Signal == "consistency" && alerts[0].Rolling == 0.4
                && alerts[0].Threshold == 0.5 && alerts[0].Replies == 8, "npc.alert did not reach the Alert callback intact");

            // A daemon error event reaches the error callback with the daemon's own code.
            Pump(() => _errors.Any(e => e.Server != null), 10, "daemon error event");
            var server = _errors.First(e => e.Server != null);
            Expect(server.Code == "unknown_character", "daemon error code " + server.Code);
            Await(_client.CloseAsync(ct), 5, "close");
            FinishChecks(new Dictionary<string, object> { { "reconnects", _client.Reconnects }, { "unknown", unknown.Count } });
        }
    }

    // ------------------------------------------------------------------ unreachable

    public void Unreachable()
    {
        _client = NewClient(new ClientOptions
        {
            AutoReconnect = true,
            MaxAttempts = 3,
            ReconnectInitialDelay = TimeSpan.FromMilliseconds(100),
            ReconnectMaxDelay = TimeSpan.FromMilliseconds(200),
            ConnectTimeout = TimeSpan.FromSeconds(3),
        });
        using (_client)
        {
            var clock = Stopwatch.StartNew();
            Task connect = _client.ConnectAsync(CancellationToken.None);
            Pump(() => connect.IsCompleted, 30, "connect attempts");
            Expect(connect.IsFaulted && connect.Exception.InnerException is PersonaeException, "connect to nowhere did not fail: " + connect.Status);
            var thrown = (PersonaeException)connect.Exception.InnerException;
            Expect(thrown.Code == ErrorCodes.ConnectFailed, "thrown code " + thrown.Code);
            Expect(_errors.Count == 3 && _errors.All(e => e.Code == ErrorCodes.ConnectFailed && e.Retryable),
                "expected 3 connect_failed reports, got " + string.Join(",", _errors.Select(e => e.Code).ToArray()));
            Expect(clock.Elapsed.TotalMilliseconds >= 100, "no backoff between attempts");
            Expect(_client.State == ConnectionState.Disconnected, "state " + _client.State);
            bool refused = false;
            try { _client.SendAsync(new ResponseCreate(), CancellationToken.None).Wait(); }
            catch (AggregateException exc) { refused = exc.InnerException is PersonaeException && ((PersonaeException)exc.InnerException).Code == ErrorCodes.NotConnected; }
            Expect(refused, "sending while disconnected did not raise not_connected");

            // Cancelling a connect that keeps retrying ends it promptly.
            var endless = NewClient(new ClientOptions { AutoReconnect = true, ReconnectInitialDelay = TimeSpan.FromMilliseconds(50) });
            var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(600));
            Task forever = endless.ConnectAsync(cts.Token);
            Pump(() => forever.IsCompleted, 10, "cancelled connect");
            Expect(forever.IsCanceled, "cancelled connect ended as " + forever.Status);
            endless.Dispose();
            Expect(endless.State == ConnectionState.Closed, "disposed client state " + endless.State);
            FinishChecks(new Dictionary<string, object> { { "elapsed_ms", (long)clock.Elapsed.TotalMilliseconds } });
        }
    }
}

internal static class Wav
{
    /// <summary>16-bit PCM WAV as mono floats (channels averaged).</summary>
    public static float[] ReadMono(string path, out int rate)
    {
        using (var r = new BinaryReader(File.OpenRead(path)))
        {
            if (Encoding.ASCII.GetString(r.ReadBytes(4)) != "RIFF") throw new CheckFailed(path + " is not a RIFF file");
            r.ReadInt32();
            if (Encoding.ASCII.GetString(r.ReadBytes(4)) != "WAVE") throw new CheckFailed(path + " is not a WAVE file");
            int channels = 1, bits = 16;
            rate = 0;
            while (true)
            {
                string id = Encoding.ASCII.GetString(r.ReadBytes(4));
                int size = r.ReadInt32();
                if (id == "fmt ")
                {
                    short format = r.ReadInt16();
                    channels = r.ReadInt16();
                    rate = r.ReadInt32();
                    r.ReadInt32();
                    r.ReadInt16();
                    bits = r.ReadInt16();
                    if (format != 1 || bits != 16) throw new CheckFailed("only 16-bit PCM WAV is supported");
                    r.ReadBytes(size - 16);
                }
                else if (id == "data")
                {
                    return Pcm16.Downmix(Pcm16.ToFloat(r.ReadBytes(size)), channels);
                }
                else r.ReadBytes(size + (size & 1));
            }
        }
    }
}
