using System;

namespace Personae
{
    /// <summary>
    /// Exponential reconnect delays with full jitter: attempt n waits a random time in
    /// [Initial·2ⁿ/2, Initial·2ⁿ], capped at Max. The random source is injectable for tests.
    /// </summary>
    public sealed class Backoff
    {
        public readonly TimeSpan Initial;
        public readonly TimeSpan Max;
        private readonly Random _random;
        private int _attempt;

        public Backoff(TimeSpan initial, TimeSpan max, Random random = null)
        {
            if (initial <= TimeSpan.Zero) throw new ArgumentOutOfRangeException("initial", "must be positive");
            if (max < initial) throw new ArgumentOutOfRangeException("max", "must be at least initial");
            Initial = initial;
            Max = max;
            _random = random ?? new Random();
        }

        public int Attempt { get { return _attempt; } }

        public TimeSpan Next()
        {
            double ceiling = Math.Min(Max.TotalMilliseconds, Initial.TotalMilliseconds * Math.Pow(2, Math.Min(_attempt, 30)));
            _attempt++;
            double ms = ceiling * (0.5 + 0.5 * _random.NextDouble());
            return TimeSpan.FromMilliseconds(ms);
        }

        public void Reset() { _attempt = 0; }
    }
}
