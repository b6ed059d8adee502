// A bounded jitter buffer between the network (audio deltas arriving in bursts) and
// an audio callback that pulls a fixed number of samples at a steady rate.
using System;

namespace Personae
{
    /// <summary>
    /// Thread-safe float ring buffer for one voice. Playback starts once
    /// <see cref="PrebufferSamples"/> are queued (or the stream is marked ended), so short
    /// network gaps do not click; an underrun plays silence and waits for the prebuffer
    /// again. When full, the oldest audio is dropped (bounded memory, counted in Dropped).
    /// </summary>
    public sealed class JitterBuffer
    {
        private readonly float[] _ring;
        private readonly object _lock = new object();
        private int _read;
        private int _count;
        private bool _playing;
        private bool _ended;
        private long _played;
        private long _dropped;
        private int _underruns;

        public readonly int PrebufferSamples;

        public JitterBuffer(int capacitySamples, int prebufferSamples)
        {
            if (capacitySamples <= 0) throw new ArgumentOutOfRangeException("capacitySamples");
            if (prebufferSamples < 0 || prebufferSamples > capacitySamples) throw new ArgumentOutOfRangeException("prebufferSamples");
            _ring = new float[capacitySamples];
            PrebufferSamples = prebufferSamples;
        }

        public int Capacity { get { return _ring.Length; } }
        public int Buffered { get { lock (_lock) return _count; } }
        /// <summary>Samples handed to the audio callback since the last Clear (for truncation).</summary>
        public long Played { get { lock (_lock) return _played; } }
        public long Dropped { get { lock (_lock) return _dropped; } }
        public int Underruns { get { lock (_lock) return _underruns; } }
        /// <summary>True while there is audio queued or playing.</summary>
        public bool IsActive { get { lock (_lock) return _count > 0; } }

        public void Write(float[] samples) { Write(samples, 0, samples.Length); }

        public void Write(float[] samples, int offset, int count)
        {
            lock (_lock)
            {
                _ended = false;
                if (count > _ring.Length)
                {
                    _dropped += count - _ring.Length;
                    offset += count - _ring.Length;
                    count = _ring.Length;
                }
                int overflow = _count + count - _ring.Length;
                if (overflow > 0)
                {
                    _read = (_read + overflow) % _ring.Length;
                    _count -= overflow;
                    _dropped += overflow;
                }
                int write = (_read + _count) % _ring.Length;
                int first = Math.Min(count, _ring.Length - write);
                Array.Copy(samples, offset, _ring, write, first);
                Array.Copy(samples, offset + first, _ring, 0, count - first);
                _count += count;
            }
        }

        /// <summary>The stream is complete: play what is left even if below the prebuffer.</summary>
        public void MarkEnded() { lock (_lock) _ended = true; }

        /// <summary>
        /// Fills <paramref name="count"/> samples from the audio thread; silence where
        /// nothing is ready. Returns how many real samples were written.
        /// </summary>
        public int Read(float[] dest, int offset, int count)
        {
            lock (_lock)
            {
                if (!_playing && (_count >= PrebufferSamples || (_ended && _count > 0))) _playing = true;
                int n = _playing ? Math.Min(count, _count) : 0;
                int first = Math.Min(n, _ring.Length - _read);
                Array.Copy(_ring, _read, dest, offset, first);
                Array.Copy(_ring, 0, dest, offset + first, n - first);
                _read = (_read + n) % _ring.Length;
                _count -= n;
                _played += n;
                if (n < count)
                {
                    Array.Clear(dest, offset + n, count - n);
                    if (_playing && !_ended) _underruns++;
                    _playing = false;
                }
                return n;
            }
        }

        /// <summary>Drop everything queued (barge-in, cancelled response).</summary>
        public void Clear()
        {
            lock (_lock)
            {
                _read = 0;
                _count = 0;
                _playing = false;
                _ended = false;
                _played = 0;
            }
        }
    }
}
