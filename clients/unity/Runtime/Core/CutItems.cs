// Replies the player cut off (barge-in, StopAllVoices): their audio, subtitles and
// actions still in flight when the voice stopped are dropped on arrival, not played.
// Bounded: only the last few cut replies can still have parts on the wire.
using System.Collections.Generic;

namespace Personae
{
    public sealed class CutItems
    {
        private readonly int _capacity;
        private readonly Queue<string> _order = new Queue<string>();
        private readonly HashSet<string> _ids = new HashSet<string>();

        public CutItems(int capacity = 32) { _capacity = capacity < 1 ? 1 : capacity; }

        public void Add(string itemId)
        {
            if (string.IsNullOrEmpty(itemId) || !_ids.Add(itemId)) return;
            _order.Enqueue(itemId);
            while (_order.Count > _capacity) _ids.Remove(_order.Dequeue());
        }

        public bool Contains(string itemId) { return itemId != null && _ids.Contains(itemId); }

        public int Count { get { return _ids.Count; } }
    }
}
