// Play-out time, not send time: how much of the current reply the player has heard.
//
// Audio handed to Unity is not audio heard: a streaming AudioClip reads ahead (up to
// ~0.8 s), and OnAudioFilterRead fills a DSP buffer that plays a few blocks later.
// Playout keeps, per block the audio thread rendered, where that block sits on the
// device's timeline and which reply samples it held (silence where the buffer ran dry),
// so a device position (what is coming out of the speaker now) maps back to a position
// in the reply. Subtitles, visemes and actions fire when their audio is heard, and a
// barge-in truncates the reply at the heard position, as OpenAI's clients do.
using System;
using System.Collections.Generic;

namespace Personae
{
    /// <summary>Milliseconds of the current reply the player has heard (any thread).</summary>
    public interface IPlayoutClock
    {
        int HeardMs { get; }
    }

    public sealed class Playout : IPlayoutClock
    {
        private struct Block
        {
            public long DeviceStart; // device frame where the block starts
            public int Frames;
            public long ReplyStart;  // reply sample (of all replies) at the block's start
            public int Real;         // reply samples in it; the rest was silence
        }

        private readonly object _lock = new object();
        private readonly Block[] _blocks;
        private readonly int _rate;
        private int _next;
        private int _count;
        private long _device;        // device frames rendered so far
        private long _reply;         // reply samples rendered so far
        private long _itemStart;     // reply sample where the current item starts
        private string _itemId;
        private long _heardDevice;   // device frame heard now (set by Heard or Latency)
        private int _latencyFrames = -1;
        private readonly List<KeyValuePair<int, Action>> _due = new List<KeyValuePair<int, Action>>();

        /// <param name="sampleRate">Rate of the rendered frames (device or clip rate).</param>
        /// <param name="history">Blocks remembered: enough to cover the output latency.</param>
        public Playout(int sampleRate, int history = 256)
        {
            if (sampleRate <= 0) throw new ArgumentOutOfRangeException("sampleRate");
            _rate = sampleRate;
            _blocks = new Block[Math.Max(8, history)];
        }

        public string ItemId { get { lock (_lock) return _itemId; } }

        /// <summary>
        /// OnAudioFilterRead: the device plays a block this many frames after it was
        /// rendered (Unity: DSP buffer length x number of buffers). The heard position then
        /// follows the rendered one; without it, call Heard with the device position.
        /// </summary>
        public void SetOutputLatency(int frames)
        {
            lock (_lock) _latencyFrames = Math.Max(0, frames);
        }

        /// <summary>Main thread: the next audio written belongs to item <paramref name="itemId"/>, starting after what is queued.</summary>
        public void BeginItem(string itemId, long queuedSamples)
        {
            lock (_lock)
            {
                _itemId = itemId;
                _itemStart = _reply + Math.Max(0, queuedSamples);
                _due.Clear();
            }
        }

        /// <summary>Audio thread: a block of <paramref name="frames"/> was rendered, <paramref name="real"/> of them reply audio (the rest silence).</summary>
        public void Rendered(int frames, int real)
        {
            if (frames <= 0) return;
            lock (_lock)
            {
                _blocks[_next] = new Block { DeviceStart = _device, Frames = frames, ReplyStart = _reply, Real = Math.Min(real, frames) };
                _next = (_next + 1) % _blocks.Length;
                _count = Math.Min(_count + 1, _blocks.Length);
                _device += frames;
                _reply += Math.Min(real, frames);
                if (_latencyFrames >= 0) _heardDevice = Math.Max(_heardDevice, _device - _latencyFrames);
            }
        }

        /// <summary>Main thread: the device position playing now (a streaming clip's cumulative timeSamples).</summary>
        public void Heard(long deviceFrame)
        {
            lock (_lock) _heardDevice = Math.Max(_heardDevice, Math.Min(deviceFrame, _device));
        }

        /// <summary>Reply samples (of all replies) heard so far.</summary>
        public long HeardSamples
        {
            get { lock (_lock) return ReplyAt(_heardDevice); }
        }

        public int HeardMs
        {
            get
            {
                lock (_lock)
                {
                    long heard = ReplyAt(_heardDevice) - _itemStart;
                    return heard <= 0 ? 0 : (int)(heard * 1000L / _rate);
                }
            }
        }

        /// <summary>Run <paramref name="callback"/> once the reply's audio reaches <paramref name="audioStartMs"/> (see Poll).</summary>
        public void At(int audioStartMs, Action callback)
        {
            if (callback == null) throw new ArgumentNullException("callback");
            lock (_lock) _due.Add(new KeyValuePair<int, Action>(audioStartMs, callback));
        }

        /// <summary>Main thread: run every callback whose audio has been heard, in audio order. Returns how many ran.</summary>
        public int Poll()
        {
            List<Action> run = new List<Action>();
            lock (_lock)
            {
                // due once the sample at its start has come out of the speaker
                long heard = ReplyAt(_heardDevice) - _itemStart;
                _due.Sort((a, b) => a.Key.CompareTo(b.Key));
                int n = 0;
                while (n < _due.Count && (long)_due[n].Key * _rate / 1000 < heard) run.Add(_due[n++].Value);
                _due.RemoveRange(0, n);
            }
            foreach (Action a in run) a();
            return run.Count;
        }

        /// <summary>Barge-in: the truncate that says what the player heard of the current item (null when none).</summary>
        public ConversationItemTruncate Truncation()
        {
            lock (_lock)
            {
                if (_itemId == null) return null;
                return new ConversationItemTruncate { ItemId = _itemId, ContentIndex = 0, AudioEndMs = HeardMsLocked() };
            }
        }

        /// <summary>Playback stopped (barge-in): callbacks not yet heard never fire.</summary>
        public void Stop()
        {
            lock (_lock)
            {
                _due.Clear();
                _itemId = null;
            }
        }

        private int HeardMsLocked()
        {
            long heard = ReplyAt(_heardDevice) - _itemStart;
            return heard <= 0 ? 0 : (int)(heard * 1000L / _rate);
        }

        // The reply sample playing at device frame d: found in the block that holds d.
        private long ReplyAt(long d)
        {
            for (int i = 1; i <= _count; i++)
            {
                Block b = _blocks[(_next - i + _blocks.Length) % _blocks.Length];
                if (d >= b.DeviceStart + b.Frames) return b.ReplyStart + b.Real;
                if (d >= b.DeviceStart) return b.ReplyStart + Math.Min(b.Real, (int)(d - b.DeviceStart));
            }
            // older than the history kept: the oldest block's start is an upper bound
            if (_count == 0) return 0;
            Block oldest = _blocks[(_next - _count + _blocks.Length) % _blocks.Length];
            return oldest.ReplyStart;
        }
    }
}
