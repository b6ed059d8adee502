// PCM16 conversions and a streaming resampler for microphone input and voice output.
using System;

namespace Personae
{
    public static class Pcm16
    {
        /// <summary>Little-endian PCM16 bytes to floats in [-1, 1).</summary>
        public static float[] ToFloat(byte[] pcm16)
        {
            int n = pcm16.Length / 2;
            var result = new float[n];
            for (int i = 0; i < n; i++)
                result[i] = (short)(pcm16[2 * i] | (pcm16[2 * i + 1] << 8)) / 32768f;
            return result;
        }

        /// <summary>Floats to little-endian PCM16 bytes, clipped to the 16-bit range.</summary>
        public static byte[] FromFloat(float[] samples, int offset, int count)
        {
            var result = new byte[count * 2];
            for (int i = 0; i < count; i++)
            {
                float f = samples[offset + i] * 32768f;
                short s = f >= 32767f ? short.MaxValue : f <= -32768f ? short.MinValue : (short)Math.Round(f);
                result[2 * i] = (byte)s;
                result[2 * i + 1] = (byte)(s >> 8);
            }
            return result;
        }

        public static byte[] FromFloat(float[] samples) { return FromFloat(samples, 0, samples.Length); }

        /// <summary>Average of every channel: interleaved frames to mono.</summary>
        public static float[] Downmix(float[] interleaved, int channels)
        {
            if (channels <= 1) return interleaved;
            int frames = interleaved.Length / channels;
            var mono = new float[frames];
            for (int f = 0; f < frames; f++)
            {
                float sum = 0;
                for (int c = 0; c < channels; c++) sum += interleaved[f * channels + c];
                mono[f] = sum / channels;
            }
            return mono;
        }

        /// <summary>Root-mean-square level of a block, for voice-activity gating and meters.</summary>
        public static float Rms(float[] samples, int offset, int count)
        {
            if (count <= 0) return 0f;
            double sum = 0;
            for (int i = offset; i < offset + count; i++) sum += samples[i] * samples[i];
            return (float)Math.Sqrt(sum / count);
        }

        public static int DurationMs(int byteCount, int sampleRate)
        {
            return (int)(byteCount / 2 * 1000L / sampleRate);
        }
    }

    /// <summary>
    /// Streaming sample-rate converter for mono audio: linear interpolation, with a
    /// moving-average low-pass when downsampling (so 48 kHz microphones do not alias
    /// into 16 kHz speech). State carries across calls, so chunk boundaries are seamless.
    /// </summary>
    public sealed class Resampler
    {
        public readonly int InputRate;
        public readonly int OutputRate;
        private readonly double _step;      // input samples per output sample
        private readonly int _taps;         // low-pass length (1 = none)
        private readonly float[] _history;  // last _taps raw inputs, for the low-pass
        private int _historyPos;
        private double _pos;                // position of the next output, in filtered-input samples, relative to _prev
        private float _prev;                // last filtered sample of the previous call
        private bool _primed;

        public Resampler(int inputRate, int outputRate)
        {
            if (inputRate <= 0 || outputRate <= 0) throw new ArgumentOutOfRangeException("inputRate", "rates must be positive");
            InputRate = inputRate;
            OutputRate = outputRate;
            _step = (double)inputRate / outputRate;
            _taps = _step > 1.0 ? (int)Math.Ceiling(_step) : 1;
            _history = new float[_taps];
        }

        public float[] Process(float[] input) { return Process(input, 0, input.Length); }

        public float[] Process(float[] input, int offset, int count)
        {
            if (InputRate == OutputRate)
            {
                var copy = new float[count];
                Array.Copy(input, offset, copy, 0, count);
                return copy;
            }
            // Filtered input with the previous call's last sample in front: index 0 = _prev.
            var x = new float[count + 1];
            x[0] = _prev;
            for (int i = 0; i < count; i++) x[i + 1] = LowPass(input[offset + i]);
            if (!_primed && count > 0)
            {
                x[0] = x[1];
                _primed = true;
            }
            int available = count; // outputs may sit anywhere in [0, count]
            int estimate = (int)Math.Ceiling((available - _pos) / _step) + 1;
            var output = new float[Math.Max(0, estimate)];
            int n = 0;
            while (_pos <= available - 1e-9 && n < output.Length)
            {
                int i = (int)_pos;
                double frac = _pos - i;
                float a = x[i];
                float b = i + 1 <= count ? x[i + 1] : x[i];
                output[n++] = (float)(a + (b - a) * frac);
                _pos += _step;
            }
            _pos -= count;
            if (count > 0) _prev = x[count];
            if (n == output.Length) return output;
            var trimmed = new float[n];
            Array.Copy(output, trimmed, n);
            return trimmed;
        }

        private float LowPass(float sample)
        {
            if (_taps == 1) return sample;
            _history[_historyPos] = sample;
            _historyPos = (_historyPos + 1) % _taps;
            float sum = 0;
            for (int i = 0; i < _taps; i++) sum += _history[i];
            return sum / _taps;
        }

        /// <summary>Forget the carried state (a new utterance or a new response).</summary>
        public void Reset()
        {
            Array.Clear(_history, 0, _history.Length);
            _historyPos = 0;
            _pos = 0;
            _prev = 0;
            _primed = false;
        }
    }
}
