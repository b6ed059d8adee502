using System;
using System.Collections.Generic;

namespace Personae
{
    /// <summary>
    /// Hands callbacks from network threads to one thread (a game's main loop): pass
    /// <see cref="Post"/> as ClientOptions.Dispatch and call <see cref="Drain"/> once a frame.
    /// </summary>
    public sealed class CallbackQueue
    {
        private readonly object _lock = new object();
        private Queue<Action> _pending = new Queue<Action>();
        private Queue<Action> _running = new Queue<Action>();

        public int Count { get { lock (_lock) return _pending.Count; } }

        public void Post(Action action)
        {
            if (action == null) return;
            lock (_lock) _pending.Enqueue(action);
        }

        /// <summary>Runs what was queued before this call (not what those callbacks queue). Returns how many ran.</summary>
        public int Drain()
        {
            lock (_lock)
            {
                Queue<Action> swap = _running;
                _running = _pending;
                _pending = swap;
            }
            int n = 0;
            while (_running.Count > 0)
            {
                Action action = _running.Dequeue();
                n++;
                action(); // RealtimeClient wraps its callbacks; they do not throw
            }
            return n;
        }
    }
}
