// Events a client sends. Each builds the wire map; Framing turns it into a frame.
using System.Collections.Generic;

namespace Personae
{
    public abstract class ClientEvent
    {
        /// <summary>Optional id the daemon echoes in an `error` this event causes.</summary>
        public string EventId;

        public abstract string Type { get; }

        protected virtual void Fill(Dictionary<string, object> map) { }

        public Dictionary<string, object> ToMap()
        {
            var map = new Dictionary<string, object>();
            if (EventId != null) map["event_id"] = EventId;
            map["type"] = Type;
            Fill(map);
            return map;
        }
    }

    public sealed class SessionUpdate : ClientEvent
    {
        public SessionConfig Session = new SessionConfig();
        public override string Type { get { return EventTypes.SessionUpdate; } }
        protected override void Fill(Dictionary<string, object> map) { map["session"] = Session.ToMap(); }
    }

    /// <summary>PCM16 little-endian mono at the session's input rate.</summary>
    public sealed class InputAudioBufferAppend : ClientEvent
    {
        public byte[] Audio;
        public override string Type { get { return EventTypes.InputAudioBufferAppend; } }
        protected override void Fill(Dictionary<string, object> map) { map["audio"] = Audio ?? new byte[0]; }
    }

    /// <summary>Push-to-talk: the player released the key.</summary>
    public sealed class InputAudioBufferCommit : ClientEvent
    {
        public override string Type { get { return EventTypes.InputAudioBufferCommit; } }
    }

    public sealed class InputAudioBufferClear : ClientEvent
    {
        public override string Type { get { return EventTypes.InputAudioBufferClear; } }
    }

    public sealed class ConversationItemCreate : ClientEvent
    {
        public ConversationItem Item;
        public override string Type { get { return EventTypes.ConversationItemCreate; } }
        protected override void Fill(Dictionary<string, object> map) { map["item"] = Item.ToMap(); }
    }

    /// <summary>The client played only `AudioEndMs` of an assistant item (barge-in on its side).</summary>
    public sealed class ConversationItemTruncate : ClientEvent
    {
        public string ItemId;
        public int ContentIndex;
        public int AudioEndMs;
        public override string Type { get { return EventTypes.ConversationItemTruncate; } }

        protected override void Fill(Dictionary<string, object> map)
        {
            map["item_id"] = ItemId;
            map["content_index"] = ContentIndex;
            map["audio_end_ms"] = AudioEndMs;
        }
    }

    public sealed class ResponseCreate : ClientEvent
    {
        public ResponseOptions Response = new ResponseOptions();
        public override string Type { get { return EventTypes.ResponseCreate; } }
        protected override void Fill(Dictionary<string, object> map) { map["response"] = Response.ToMap(); }
    }

    public sealed class ResponseCancel : ClientEvent
    {
        public string ResponseId;
        public override string Type { get { return EventTypes.ResponseCancel; } }

        protected override void Fill(Dictionary<string, object> map)
        {
            if (ResponseId != null) map["response_id"] = ResponseId;
        }
    }

    /// <summary>Something happened in the game that characters in the scene may react to.</summary>
    public sealed class GameEvent : ClientEvent
    {
        public string Name;
        public string Description = "";
        /// <summary>Who perceives it; null: every character in the scene.</summary>
        public IList<string> Characters;
        public Dictionary<string, object> Data = new Dictionary<string, object>();
        public override string Type { get { return EventTypes.GameEvent; } }

        protected override void Fill(Dictionary<string, object> map)
        {
            map["name"] = Name;
            map["description"] = Description ?? "";
            if (Characters != null) map["characters"] = new List<object>(Characters);
            map["data"] = Data ?? new Dictionary<string, object>();
        }
    }

    /// <summary>The game tells a character that something happened: it says the trigger's
    /// line (parameters filled in) or replies to its instruction.</summary>
    public sealed class GameTrigger : ClientEvent
    {
        public string Character;
        /// <summary>A trigger declared in the character's file.</summary>
        public string Trigger;
        /// <summary>Checked against the trigger's declared JSON Schema.</summary>
        public Dictionary<string, object> Parameters = new Dictionary<string, object>();
        public override string Type { get { return EventTypes.GameTrigger; } }

        protected override void Fill(Dictionary<string, object> map)
        {
            map["character"] = Character;
            map["trigger"] = Trigger;
            map["parameters"] = Parameters ?? new Dictionary<string, object>();
        }
    }

    /// <summary>What became of an npc.action of kind "game": the character remembers it.</summary>
    public sealed class GameActionResult : ClientEvent
    {
        /// <summary>The ActionId of the NpcAction.</summary>
        public string ActionId;
        /// <summary>"done", "refused" or "failed" (ActionStatus).</summary>
        public string Status = ActionStatus.Done;
        public string Reason = "";
        public override string Type { get { return EventTypes.GameActionResult; } }

        protected override void Fill(Dictionary<string, object> map)
        {
            map["action_id"] = ActionId;
            map["status"] = Status;
            map["reason"] = Reason ?? "";
        }
    }

    /// <summary>The statuses of a GameActionResult.</summary>
    public static class ActionStatus
    {
        public const string Done = "done";
        public const string Refused = "refused";
        public const string Failed = "failed";
    }

    /// <summary>The player rated a reply (thumbs, stars): feeds the daemon's A/B experiment metrics.</summary>
    public sealed class NpcFeedback : ClientEvent
    {
        public string ResponseId;
        public string Character;
        /// <summary>-1 (bad) .. 1 (good).</summary>
        public double Score;
        public string Comment;
        public override string Type { get { return EventTypes.NpcFeedback; } }

        protected override void Fill(Dictionary<string, object> map)
        {
            if (ResponseId != null) map["response_id"] = ResponseId;
            map["character"] = Character;
            map["score"] = System.Math.Max(-1.0, System.Math.Min(1.0, Score));
            if (Comment != null) map["comment"] = Comment;
        }
    }

    /// <summary>
    /// Characters in the scene talk to each other: an exchange of <see cref="Lines"/> lines
    /// on <see cref="Topic"/>, the first character opening. The lines arrive as ordinary
    /// responses, between npc.exchange.started and npc.exchange.done; the player's speech
    /// or text stops it.
    /// </summary>
    public sealed class NpcConverse : ClientEvent
    {
        /// <summary>Two or more characters in the scene; the first speaks first.</summary>
        public IList<string> Characters;
        public string Topic;
        /// <summary>Lines in all, 1 to the daemon's exchange_max_lines (12).</summary>
        public int Lines = 4;
        public override string Type { get { return EventTypes.NpcConverse; } }

        protected override void Fill(Dictionary<string, object> map)
        {
            map["characters"] = new List<object>(Characters ?? new List<string>());
            map["topic"] = Topic ?? "";
            map["lines"] = Lines;
        }
    }
}
