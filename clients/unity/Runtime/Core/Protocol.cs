// personae protocol v1, client side: every event the daemon sends and every event a
// client sends, mirroring sdk/protocol.py (the source of truth). A test compares the
// event names and fields here against that module, so a protocol change the client
// misses fails CI.
using System;
using System.Collections.Generic;

namespace Personae
{
    public static class Protocol
    {
        public const int Version = 1;
        public const string Subprotocol = "personae.v1";
    }

    /// <summary>Every event name in protocol v1.</summary>
    public static class EventTypes
    {
        // client → daemon
        public const string SessionUpdate = "session.update";
        public const string InputAudioBufferAppend = "input_audio_buffer.append";
        public const string InputAudioBufferCommit = "input_audio_buffer.commit";
        public const string InputAudioBufferClear = "input_audio_buffer.clear";
        public const string ConversationItemCreate = "conversation.item.create";
        public const string ConversationItemTruncate = "conversation.item.truncate";
        public const string ResponseCreate = "response.create";
        public const string ResponseCancel = "response.cancel";
        public const string GameEvent = "game.event";
        public const string NpcFeedback = "npc.feedback";
        public const string NpcConverse = "npc.converse";
        public const string GameTrigger = "game.trigger";
        public const string GameActionResult = "game.action_result";

        // daemon → client
        public const string SessionCreated = "session.created";
        public const string SessionUpdated = "session.updated";
        public const string SpeechStarted = "input_audio_buffer.speech_started";
        public const string SpeechStopped = "input_audio_buffer.speech_stopped";
        public const string InputAudioBufferCommitted = "input_audio_buffer.committed";
        public const string InputAudioBufferCleared = "input_audio_buffer.cleared";
        public const string ConversationItemCreated = "conversation.item.created";
        public const string ConversationItemTruncated = "conversation.item.truncated";
        public const string TranscriptionDelta = "conversation.item.input_audio_transcription.delta";
        public const string TranscriptionCompleted = "conversation.item.input_audio_transcription.completed";
        public const string NpcRoute = "npc.route";
        public const string ResponseCreated = "response.created";
        public const string OutputTextDelta = "response.output_text.delta";
        public const string OutputTextDone = "response.output_text.done";
        public const string OutputAudioDelta = "response.output_audio.delta";
        public const string OutputAudioDone = "response.output_audio.done";
        public const string NpcSentence = "npc.sentence";
        public const string NpcViseme = "npc.viseme";
        public const string NpcEmotion = "npc.emotion";
        public const string NpcAction = "npc.action";
        public const string NpcAlert = "npc.alert";
        public const string NpcExchangeStarted = "npc.exchange.started";
        public const string NpcExchangeLine = "npc.exchange.line";
        public const string NpcExchangeDone = "npc.exchange.done";
        public const string ResponseDone = "response.done";
        public const string Error = "error";

        /// <summary>Server event types this client decodes (the decoder's own table).</summary>
        public static IEnumerable<string> Server { get { return ServerEvents.Known; } }

        /// <summary>Client event types this client can send.</summary>
        public static readonly string[] Client =
        {
            SessionUpdate, InputAudioBufferAppend, InputAudioBufferCommit, InputAudioBufferClear,
            ConversationItemCreate, ConversationItemTruncate, ResponseCreate, ResponseCancel, GameEvent, NpcFeedback,
            NpcConverse,
            GameTrigger, GameActionResult,
        };
    }

    // ------------------------------------------------------------------ shared types

    public sealed class TurnDetection
    {
        public string Type = "server_vad";
        public double? Threshold;
        public int? SilenceDurationMs;
        public int? PrefixPaddingMs;
        /// <summary>Start a response when a turn ends (off: the client sends response.create).</summary>
        public bool CreateResponse = true;
        /// <summary>Speech over a character's reply cancels that reply (barge-in).</summary>
        public bool InterruptResponse = true;

        internal Dictionary<string, object> ToMap()
        {
            var m = new Dictionary<string, object> { { "type", Type } };
            if (Threshold.HasValue) m["threshold"] = Threshold.Value;
            if (SilenceDurationMs.HasValue) m["silence_duration_ms"] = SilenceDurationMs.Value;
            if (PrefixPaddingMs.HasValue) m["prefix_padding_ms"] = PrefixPaddingMs.Value;
            m["create_response"] = CreateResponse;
            m["interrupt_response"] = InterruptResponse;
            return m;
        }

        internal static TurnDetection From(MapView m)
        {
            if (m == null) return null;
            var t = new TurnDetection
            {
                Type = m.Str("type"),
                Threshold = m.DoubleOrNull("threshold"),
                SilenceDurationMs = m.IntOrNull("silence_duration_ms"),
                PrefixPaddingMs = m.IntOrNull("prefix_padding_ms"),
                CreateResponse = m.Bool("create_response", true),
                InterruptResponse = m.Bool("interrupt_response", true),
            };
            m.Finish();
            return t;
        }
    }

    /// <summary>
    /// Session settings for <c>session.update</c>. Partial: only the properties you set
    /// are sent, so the daemon keeps the rest. Setting <see cref="TurnDetection"/> to
    /// null switches to push-to-talk.
    /// </summary>
    public sealed class SessionConfig
    {
        private readonly Dictionary<string, object> _set = new Dictionary<string, object>();

        /// <summary>Characters in the scene, who can hear the player (null: every loaded one).</summary>
        public IList<string> Characters
        {
            get { return Read<IList<string>>("characters"); }
            set { _set["characters"] = value == null ? null : new List<string>(value); }
        }

        /// <summary>Always answer with this character.</summary>
        public string PinnedCharacter { get { return Read<string>("pinned_character"); } set { _set["pinned_character"] = value; } }

        /// <summary>Server VAD settings; null means push-to-talk.</summary>
        public TurnDetection TurnDetection { get { return Read<TurnDetection>("turn_detection"); } set { _set["turn_detection"] = value; } }

        public int? InputSampleRate { get { return Read<int?>("input_sample_rate"); } set { SetOrClear("input_sample_rate", value); } }

        public int? OutputSampleRate { get { return Read<int?>("output_sample_rate"); } set { SetOrClear("output_sample_rate", value); } }

        /// <summary>["text"] turns voice off; ["text", "audio"] speaks every reply.</summary>
        public IList<string> OutputModalities
        {
            get { return Read<IList<string>>("output_modalities"); }
            set { SetOrClear("output_modalities", value == null ? null : new List<string>(value)); }
        }

        public string PlayerId { get { return Read<string>("player_id"); } set { _set["player_id"] = value; } }

        /// <summary>The client cancels the character's echo itself (headphones, a platform
        /// AEC): the daemon's echo check is skipped. Leave unset on speakers without AEC.</summary>
        public bool? ClientEchoCancellation { get { return Read<bool?>("client_echo_cancellation"); } set { SetOrClear("client_echo_cancellation", value); } }

        public bool IsSet(string wireName) { return _set.ContainsKey(wireName); }

        public bool IsEmpty { get { return _set.Count == 0; } }

        /// <summary>Later settings win: what a reconnect re-sends is every update merged.</summary>
        public void MergeFrom(SessionConfig other)
        {
            foreach (var kv in other._set) _set[kv.Key] = kv.Value;
        }

        internal Dictionary<string, object> ToMap()
        {
            var m = new Dictionary<string, object>();
            foreach (var kv in _set)
            {
                var t = kv.Value as TurnDetection;
                if (t != null) m[kv.Key] = t.ToMap();
                else if (kv.Value is IList<string>) m[kv.Key] = new List<object>((IList<string>)kv.Value);
                else m[kv.Key] = kv.Value;
            }
            return m;
        }

        private T Read<T>(string key)
        {
            object v;
            return _set.TryGetValue(key, out v) && v is T ? (T)v : default(T);
        }

        private void SetOrClear(string key, object value)
        {
            if (value == null) _set.Remove(key);
            else _set[key] = value;
        }
    }

    /// <summary>The session as the daemon holds it (session.created / session.updated).</summary>
    public sealed class SessionInfo
    {
        public string Id;
        public int ProtocolVersion;
        public List<string> Characters;
        public string PinnedCharacter;
        public TurnDetection TurnDetection;
        public int InputSampleRate = 16000;
        public int OutputSampleRate = 24000;
        public List<string> OutputModalities;
        public string PlayerId;
        /// <summary>Scene direction added to every reply (OpenAI's <c>instructions</c>).</summary>
        public string Instructions;
        /// <summary>A character id whose voice speaks every reply; null: each their own.</summary>
        public string Voice;
        /// <summary>Whether <c>npc.*</c> events are sent.</summary>
        public bool NpcEvents = true;
        /// <summary>Whether <c>npc.viseme</c> events (lip-sync, word timings) are sent.</summary>
        public bool Visemes = true;
        /// <summary>Whether the client said it cancels echo itself (the daemon's check is then off).</summary>
        public bool ClientEchoCancellation;

        internal static SessionInfo From(MapView m)
        {
            if (m == null) return new SessionInfo();
            var s = new SessionInfo
            {
                Id = m.Str("id"),
                ProtocolVersion = m.Int("protocol_version"),
                Characters = m.StrList("characters"),
                PinnedCharacter = m.Str("pinned_character"),
                TurnDetection = TurnDetection.From(m.Map("turn_detection")),
                InputSampleRate = m.Int("input_sample_rate", 16000),
                OutputSampleRate = m.Int("output_sample_rate", 24000),
                OutputModalities = m.StrList("output_modalities"),
                PlayerId = m.Str("player_id"),
                Instructions = m.Str("instructions"),
                Voice = m.Str("voice"),
                NpcEvents = m.Bool("npc_events", true),
                Visemes = m.Bool("visemes", true),
                ClientEchoCancellation = m.Bool("client_echo_cancellation", false),
            };
            m.Finish();
            return s;
        }
    }

    public sealed class ContentPart
    {
        public string Type = "input_text";
        public string Text;

        internal Dictionary<string, object> ToMap()
        {
            var m = new Dictionary<string, object> { { "type", Type } };
            if (Text != null) m["text"] = Text;
            return m;
        }
    }

    public sealed class ConversationItem
    {
        public string Id;
        public string Type = "message";
        public string Role = "user";
        public List<ContentPart> Content = new List<ContentPart>();
        /// <summary>For assistant items: who said it.</summary>
        public string Character;

        public string Text
        {
            get
            {
                var parts = new List<string>();
                foreach (var p in Content) if (!string.IsNullOrEmpty(p.Text)) parts.Add(p.Text);
                return string.Join(" ", parts.ToArray());
            }
        }

        public static ConversationItem UserText(string text)
        {
            var item = new ConversationItem();
            item.Content.Add(new ContentPart { Type = "input_text", Text = text });
            return item;
        }

        internal Dictionary<string, object> ToMap()
        {
            var m = new Dictionary<string, object>();
            if (Id != null) m["id"] = Id;
            m["type"] = Type;
            m["role"] = Role;
            var content = new List<object>();
            foreach (var p in Content) content.Add(p.ToMap());
            m["content"] = content;
            if (Character != null) m["character"] = Character;
            return m;
        }

        internal static ConversationItem From(MapView m)
        {
            if (m == null) return new ConversationItem();
            var item = new ConversationItem
            {
                Id = m.Str("id"),
                Type = m.Str("type"),
                Role = m.Str("role"),
                Character = m.Str("character"),
            };
            foreach (var part in m.MapList("content"))
            {
                item.Content.Add(new ContentPart { Type = part.Str("type"), Text = part.Str("text") });
                part.Finish();
            }
            m.Finish();
            return item;
        }
    }

    public sealed class ResponseOptions
    {
        /// <summary>Answer as this character (skips routing).</summary>
        public string Character;
        public IList<string> OutputModalities;
        /// <summary>Extra instruction for this one response ("greet the player").</summary>
        public string Instructions;

        internal Dictionary<string, object> ToMap()
        {
            var m = new Dictionary<string, object>();
            if (Character != null) m["character"] = Character;
            if (OutputModalities != null) m["output_modalities"] = new List<object>(OutputModalities);
            if (Instructions != null) m["instructions"] = Instructions;
            return m;
        }
    }

    public sealed class ResponseInfo
    {
        public string Id;
        public string Character;
        /// <summary>"in_progress", "completed", "cancelled" or "failed".</summary>
        public string Status;
        public string StatusReason;
        public string OutputText = "";
        /// <summary>Milliseconds of reply audio the daemon actually wrote.</summary>
        public int AudioSentMs;
        public int? OutputSampleRate;

        internal static ResponseInfo From(MapView m)
        {
            if (m == null) return new ResponseInfo();
            var r = new ResponseInfo
            {
                Id = m.Str("id"),
                Character = m.Str("character"),
                Status = m.Str("status"),
                StatusReason = m.Str("status_reason"),
                OutputText = m.Str("output_text") ?? "",
                AudioSentMs = m.Int("audio_sent_ms"),
                OutputSampleRate = m.IntOrNull("output_sample_rate"),
            };
            m.Finish();
            return r;
        }
    }

    public sealed class ErrorInfo
    {
        /// <summary>"invalid_request_error" (the client's fault) or "server_error".</summary>
        public string Type;
        public string Code;
        public string Message;
        public string EventType;
        public string EventId;
        public bool Retryable;
        /// <summary>With "server_busy": about how long to wait before asking again.</summary>
        public int? RetryAfterMs;

        internal static ErrorInfo From(MapView m)
        {
            if (m == null) return new ErrorInfo { Code = "unknown", Message = "" };
            var e = new ErrorInfo
            {
                Type = m.Str("type"),
                Code = m.Str("code"),
                Message = m.Str("message"),
                EventType = m.Str("event_type"),
                EventId = m.Str("event_id"),
                Retryable = m.Bool("retryable"),
                RetryAfterMs = m.IntOrNull("retry_after_ms"),
            };
            m.Finish();
            return e;
        }
    }
}
