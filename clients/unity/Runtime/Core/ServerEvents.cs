// Events the daemon sends. `ServerEvents.Decode` turns a decoded frame into one of
// these; a type this client does not know (a newer daemon) becomes UnknownEvent,
// which callers ignore or log, never an error.
using System;
using System.Collections.Generic;

namespace Personae
{
    public abstract class ServerEvent
    {
        public string Type;
        public string EventId;

        /// <summary>The character this event is about, when it is about one.</summary>
        public virtual string Character { get { return null; } }
    }

    public sealed class SessionCreated : ServerEvent { public SessionInfo Session; }

    public sealed class SessionUpdated : ServerEvent { public SessionInfo Session; }

    public sealed class SpeechStarted : ServerEvent { public int AudioStartMs; public string ItemId; }

    public sealed class SpeechStopped : ServerEvent { public int AudioEndMs; public string ItemId; }

    public sealed class InputAudioBufferCommitted : ServerEvent { public string ItemId; }

    public sealed class InputAudioBufferCleared : ServerEvent { }

    public sealed class ConversationItemCreated : ServerEvent
    {
        public ConversationItem Item;
        public override string Character { get { return Item != null ? Item.Character : null; } }
    }

    public sealed class ConversationItemTruncated : ServerEvent
    {
        public string ItemId;
        public int ContentIndex;
        public int AudioEndMs;
    }

    /// <summary>More of what the player is saying, while they speak (append to the deltas before).</summary>
    public sealed class TranscriptionDelta : ServerEvent
    {
        public string ItemId;
        public int ContentIndex;
        public string Delta;
    }

    /// <summary>What the daemon heard the player say.</summary>
    public sealed class TranscriptionCompleted : ServerEvent
    {
        public string ItemId;
        public int ContentIndex;
        public string Transcript;
    }

    /// <summary>Who answers the player's turn, and why, with every character's score.</summary>
    public sealed class NpcRoute : ServerEvent
    {
        public string ItemId;
        public string CharacterId;
        /// <summary>"pinned", "requested", "addressed", "continued", "similarity" or "only".</summary>
        public string Reason;
        public Dictionary<string, double> Scores;
        public override string Character { get { return CharacterId; } }
    }

    public sealed class ResponseCreated : ServerEvent
    {
        public ResponseInfo Response;
        public override string Character { get { return Response.Character; } }
    }

    public sealed class ResponseDone : ServerEvent
    {
        public ResponseInfo Response;
        public override string Character { get { return Response.Character; } }
    }

    /// <summary>Common fields of every streamed part of a response.</summary>
    public abstract class ResponsePart : ServerEvent
    {
        public string ResponseId;
        public string ItemId;
        public string CharacterId;
        public int OutputIndex;
        public int ContentIndex;
        public override string Character { get { return CharacterId; } }
    }

    public sealed class OutputTextDelta : ResponsePart { public string Delta; }

    public sealed class OutputTextDone : ResponsePart { public string Text; }

    /// <summary>PCM16 little-endian mono at the session's output rate.</summary>
    public sealed class OutputAudioDelta : ResponsePart
    {
        public byte[] Delta;
        /// <summary>Where this chunk starts in the response's audio, in ms.</summary>
        public int OffsetMs;
    }

    public sealed class OutputAudioDone : ResponsePart { }

    /// <summary>A sentence about to be spoken and where its audio starts: subtitles, lip-sync.</summary>
    public sealed class NpcSentence : ResponsePart
    {
        public string Text;
        public int AudioStartMs;
        public int AudioDurationMs;
    }

    /// <summary>One mouth shape (the 15 Oculus/Meta visemes: "sil", "PP", "FF", "TH", "DD", "kk",
    /// "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou") on the reply's audio timeline, in ms.</summary>
    public sealed class Viseme
    {
        public string Name;
        public int StartMs;
        public int DurationMs;
    }

    /// <summary>Where a spoken word starts and ends on the reply's audio timeline, in ms.</summary>
    public sealed class WordTiming
    {
        public string Text;
        public int StartMs;
        public int DurationMs;
    }

    /// <summary>
    /// Lip-sync: the visemes and words that start in the audio chunk sent right after this
    /// event, timed like OutputAudioDelta.OffsetMs. A barge-in drops them with their audio.
    /// </summary>
    public sealed class NpcViseme : ResponsePart
    {
        public List<Viseme> Visemes = new List<Viseme>();
        public List<WordTiming> Words = new List<WordTiming>();
    }

    /// <summary>
    /// A stage direction in the reply (`*waves*`, `[angry]`): shown or animated, never spoken.
    /// AudioStartMs is where in the reply's audio it belongs.
    /// </summary>
    public sealed class NpcAction : ResponsePart
    {
        /// <summary>"action" (a gesture), "emotion" (a tone marker) or "game" (a declared
        /// action for the game to execute: Name, Arguments, ActionId).</summary>
        public string Kind;
        public string Text;
        public int AudioStartMs;
        /// <summary>Kind "game": the declared action's name.</summary>
        public string Name;
        /// <summary>Kind "game": its arguments, valid against its schema (long, double, string, bool).</summary>
        public Dictionary<string, object> Arguments;
        /// <summary>Kind "game": answer with a GameActionResult carrying this id.</summary>
        public string ActionId;
        public bool IsGameAction { get { return Kind == "game"; } }
    }

    /// <summary>How a character feels now: after the player's words, a game event, or a reply.</summary>
    public sealed class NpcEmotion : ServerEvent
    {
        public string CharacterId;
        /// <summary>The strongest emotion ("joy", "anger", "fear", "sadness", "surprise", ...).</summary>
        public string Dominant;
        public double Intensity;
        public Dictionary<string, double> Blend;
        public double? Trust;
        public double? Affinity;
        public override string Character { get { return CharacterId; } }
    }

    /// <summary>A character is drifting out of character: its rolling score fell below the threshold.</summary>
    public sealed class NpcAlert : ServerEvent
    {
        public string CharacterId;
        /// <summary>"consistency" (similarity to reference lines) or "traits" (style adherence).</summary>
        public string Signal;
        public double Rolling;
        public double Threshold;
        public int Replies;
        public override string Character { get { return CharacterId; } }
    }

    /// <summary>An exchange between characters starts (after npc.converse); its lines follow as responses.</summary>
    public sealed class NpcExchangeStarted : ServerEvent
    {
        public string ExchangeId;
        public List<string> Characters;
        public string Topic;
        public int Lines;
    }

    /// <summary>One line of an exchange is over (after its response.done).</summary>
    public sealed class NpcExchangeLine : ServerEvent
    {
        public string ExchangeId;
        public int Index;
        public string CharacterId;
        public string ResponseId;
        /// <summary>"completed", "cancelled" or "failed".</summary>
        public string Status;
        /// <summary>What the listeners heard of the line.</summary>
        public string Text;
        /// <summary>The LoRA adapter it was generated with ("bram@v1"); null: the base model.</summary>
        public string Adapter;
        public override string Character { get { return CharacterId; } }
    }

    /// <summary>An exchange is over: "finished", "interrupted" or "error".</summary>
    public sealed class NpcExchangeDone : ServerEvent
    {
        public string ExchangeId;
        public string Reason;
        public int LinesSpoken;
        /// <summary>The character the last line named, who answers the player's next unnamed line.</summary>
        public string Handoff;
    }

    public sealed class ErrorEvent : ServerEvent { public ErrorInfo Error; }

    /// <summary>An event type this client does not know: a newer daemon. Safe to ignore.</summary>
    public sealed class UnknownEvent : ServerEvent { public IDictionary<string, object> Raw; }

    public static class ServerEvents
    {
        private static readonly Dictionary<string, Func<MapView, ServerEvent>> Decoders =
            new Dictionary<string, Func<MapView, ServerEvent>>
            {
                { EventTypes.SessionCreated, m => new SessionCreated { Session = SessionInfo.From(m.Map("session")) } },
                { EventTypes.SessionUpdated, m => new SessionUpdated { Session = SessionInfo.From(m.Map("session")) } },
                { EventTypes.SpeechStarted, m => new SpeechStarted { AudioStartMs = m.Int("audio_start_ms"), ItemId = m.Str("item_id") } },
                { EventTypes.SpeechStopped, m => new SpeechStopped { AudioEndMs = m.Int("audio_end_ms"), ItemId = m.Str("item_id") } },
                { EventTypes.InputAudioBufferCommitted, m => new InputAudioBufferCommitted { ItemId = m.Str("item_id") } },
                { EventTypes.InputAudioBufferCleared, m => new InputAudioBufferCleared() },
                { EventTypes.ConversationItemCreated, m => new ConversationItemCreated { Item = ConversationItem.From(m.Map("item")) } },
                {
                    EventTypes.ConversationItemTruncated, m => new ConversationItemTruncated
                    {
                        ItemId = m.Str("item_id"), ContentIndex = m.Int("content_index"), AudioEndMs = m.Int("audio_end_ms"),
                    }
                },
                {
                    EventTypes.TranscriptionDelta, m => new TranscriptionDelta
                    {
                        ItemId = m.Str("item_id"), ContentIndex = m.Int("content_index"), Delta = m.Str("delta") ?? "",
                    }
                },
                {
                    EventTypes.TranscriptionCompleted, m => new TranscriptionCompleted
                    {
                        ItemId = m.Str("item_id"), ContentIndex = m.Int("content_index"), Transcript = m.Str("transcript") ?? "",
                    }
                },
                {
                    EventTypes.NpcRoute, m => new NpcRoute
                    {
                        ItemId = m.Str("item_id"), CharacterId = m.Str("character"), Reason = m.Str("reason"), Scores = m.DoubleMap("scores"),
                    }
                },
                { EventTypes.ResponseCreated, m => new ResponseCreated { Response = ResponseInfo.From(m.Map("response")) } },
                { EventTypes.ResponseDone, m => new ResponseDone { Response = ResponseInfo.From(m.Map("response")) } },
                { EventTypes.OutputTextDelta, m => Part(new OutputTextDelta { Delta = m.Str("delta") ?? "" }, m) },
                { EventTypes.OutputTextDone, m => Part(new OutputTextDone { Text = m.Str("text") ?? "" }, m) },
                { EventTypes.OutputAudioDelta, m => Part(new OutputAudioDelta { Delta = m.Bytes("delta"), OffsetMs = m.Int("offset_ms") }, m) },
                { EventTypes.OutputAudioDone, m => Part(new OutputAudioDone(), m) },
                {
                    EventTypes.NpcSentence, m => Part(new NpcSentence
                    {
                        Text = m.Str("text") ?? "", AudioStartMs = m.Int("audio_start_ms"), AudioDurationMs = m.Int("audio_duration_ms"),
                    }, m)
                },
                {
                    EventTypes.NpcViseme, m => Part(new NpcViseme
                    {
                        Visemes = m.MapList("visemes").ConvertAll(v => new Viseme
                        {
                            Name = v.Str("viseme") ?? "sil", StartMs = v.Int("start_ms"), DurationMs = v.Int("duration_ms"),
                        }),
                        Words = m.MapList("words").ConvertAll(w => new WordTiming
                        {
                            Text = w.Str("text") ?? "", StartMs = w.Int("start_ms"), DurationMs = w.Int("duration_ms"),
                        }),
                    }, m)
                },
                {
                    EventTypes.NpcAction, m => Part(new NpcAction
                    {
                        Kind = m.Str("kind") ?? "action", Text = m.Str("text") ?? "", AudioStartMs = m.Int("audio_start_ms"),
                        Name = m.Has("name") ? m.Str("name") : null,
                        Arguments = m.Has("arguments") ? m.Object("arguments") : null,
                        ActionId = m.Has("action_id") ? m.Str("action_id") : null,
                    }, m)
                },
                {
                    EventTypes.NpcEmotion, m => new NpcEmotion
                    {
                        CharacterId = m.Str("character"), Dominant = m.Str("dominant") ?? "", Intensity = m.DoubleOrNull("intensity") ?? 0,
                        Blend = m.DoubleMap("blend"), Trust = m.DoubleOrNull("trust"), Affinity = m.DoubleOrNull("affinity"),
                    }
                },
                {
                    EventTypes.NpcAlert, m => new NpcAlert
                    {
                        CharacterId = m.Str("character"), Signal = m.Str("signal") ?? "", Rolling = m.DoubleOrNull("rolling") ?? 0,
                        Threshold = m.DoubleOrNull("threshold") ?? 0, Replies = m.Int("replies"),
                    }
                },
                {
                    EventTypes.NpcExchangeStarted, m => new NpcExchangeStarted
                    {
                        ExchangeId = m.Str("exchange_id"), Characters = m.StrList("characters"), Topic = m.Str("topic") ?? "",
                        Lines = m.Int("lines"),
                    }
                },
                {
                    EventTypes.NpcExchangeLine, m => new NpcExchangeLine
                    {
                        ExchangeId = m.Str("exchange_id"), Index = m.Int("index"), CharacterId = m.Str("character"),
                        ResponseId = m.Str("response_id"), Status = m.Str("status"), Text = m.Str("text") ?? "",
                        Adapter = m.Str("adapter"),
                    }
                },
                {
                    EventTypes.NpcExchangeDone, m => new NpcExchangeDone
                    {
                        ExchangeId = m.Str("exchange_id"), Reason = m.Str("reason"), LinesSpoken = m.Int("lines_spoken"),
                        Handoff = m.Str("handoff"),
                    }
                },
                { EventTypes.Error, m => new ErrorEvent { Error = ErrorInfo.From(m.Map("error")) } },
            };

        public static IEnumerable<string> Known { get { return Decoders.Keys; } }

        /// <summary>
        /// Typed event from a decoded frame. Unknown types become UnknownEvent; a frame
        /// without a string "type" raises PersonaeException("invalid_event").
        /// </summary>
        public static ServerEvent FromMap(IDictionary<string, object> map, FieldAudit audit = null)
        {
            var m = new MapView(map, audit);
            string type = m.Str("type");
            if (type == null) throw new PersonaeException(ErrorCodes.InvalidEvent, "event has no string 'type' field");
            Func<MapView, ServerEvent> decode;
            if (!Decoders.TryGetValue(type, out decode))
                return new UnknownEvent { Type = type, EventId = map.ContainsKey("event_id") ? map["event_id"] as string : null, Raw = map };
            ServerEvent e = decode(m);
            e.Type = type;
            e.EventId = m.Str("event_id");
            m.Finish();
            return e;
        }

        private static ServerEvent Part(ResponsePart part, MapView m)
        {
            part.ResponseId = m.Str("response_id");
            part.ItemId = m.Str("item_id");
            part.CharacterId = m.Str("character");
            part.OutputIndex = m.Int("output_index");
            part.ContentIndex = m.Int("content_index");
            return part;
        }
    }
}
