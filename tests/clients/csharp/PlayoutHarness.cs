// Play-out time on a simulated audio thread, outside Unity (tests/clients/test_unity_playout.py).
//
// A real second thread plays the audio thread's part: it renders blocks from the
// JitterBuffer and tells Playout, one block per step, while the main thread polls the
// callbacks between steps (the steps are handed over with semaphores, so the run is
// deterministic). Each scenario prints one JSON line for the Python side to check.
//
//   mono playout.exe filter    OnAudioFilterRead: 48 kHz, 1024-frame blocks, 2 x 1024 DSP latency
//   mono playout.exe clip      streaming clip: reads 0.8 s ahead, its play position given apart,
//                              with an underrun in the middle of the reply
//   mono playout.exe cut       CutItems: which replies' late parts are dropped, and its bound
using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;
using Personae;

public static class PlayoutHarness
{
    private static readonly int[] Sentences = { 0, 250, 500, 750 };

    public static int Main(string[] args)
    {
        string mode = args.Length > 0 ? args[0] : "filter";
        Console.WriteLine(Json.Serialize(mode == "clip" ? Clip() : mode == "cut" ? Cut() : Filter()));
        return 0;
    }

    // Cut three replies into a set that holds two: the oldest is forgotten.
    private static Dictionary<string, object> Cut()
    {
        var cut = new CutItems(2);
        cut.Add("item_a");
        cut.Add("item_a"); // twice is once
        cut.Add(null);     // a voice that had no reply yet
        var before = new List<object> { cut.Contains("item_a"), cut.Contains("item_b"), cut.Count };
        cut.Add("item_b");
        cut.Add("item_c");
        return new Dictionary<string, object>
        {
            { "before", before },
            { "after", new List<object> { cut.Contains("item_a"), cut.Contains("item_b"), cut.Contains("item_c"), cut.Count } },
        };
    }

    // One block rendered on the audio thread, the main thread waiting for it.
    private sealed class AudioThread : IDisposable
    {
        private readonly SemaphoreSlim _go = new SemaphoreSlim(0);
        private readonly SemaphoreSlim _done = new SemaphoreSlim(0);
        private readonly Thread _thread;
        private readonly JitterBuffer _buffer;
        private readonly Playout _playout;
        private volatile int _frames;
        private volatile bool _stop;

        public AudioThread(JitterBuffer buffer, Playout playout)
        {
            _buffer = buffer;
            _playout = playout;
            _thread = new Thread(Run) { IsBackground = true, Name = "simulated audio" };
            _thread.Start();
        }

        public void Render(int frames)
        {
            _frames = frames;
            _go.Release();
            _done.Wait();
        }

        private void Run()
        {
            float[] block = new float[8192];
            while (true)
            {
                _go.Wait();
                if (_stop) return;
                int real = _buffer.Read(block, 0, _frames);
                _playout.Rendered(_frames, real);
                _done.Release();
            }
        }

        public void Dispose()
        {
            _stop = true;
            _go.Release();
            _thread.Join();
        }
    }

    private static List<object> Schedule(Playout playout, List<object> fired, Func<Dictionary<string, object>> now)
    {
        foreach (int start in Sentences)
        {
            int s = start;
            playout.At(s, () =>
            {
                Dictionary<string, object> at = now();
                at["audio_start_ms"] = s;
                fired.Add(at);
            });
        }
        return fired;
    }

    private static Dictionary<string, object> Filter()
    {
        const int rate = 48000, block = 1024, latency = 2 * block;
        JitterBuffer buffer = new JitterBuffer(rate * 5, rate * 120 / 1000);
        Playout playout = new Playout(rate);
        playout.SetOutputLatency(latency);
        List<object> fired = new List<object>();
        long rendered = 0;
        playout.BeginItem("item_a", buffer.Buffered);
        buffer.Write(new float[rate]); // one second of reply
        buffer.MarkEnded();
        Schedule(playout, fired, () => new Dictionary<string, object>
        {
            { "heard_ms", playout.HeardMs },
            { "handed_ms", (int)(buffer.Played * 1000L / rate) }, // send time: handed to the device
            { "rendered_frames", rendered },
        });
        Dictionary<string, object> truncate = null;
        using (AudioThread audio = new AudioThread(buffer, playout))
        {
            for (int step = 0; step < 60; step++)
            {
                audio.Render(block);
                rendered += block;
                playout.Poll();
                if (step == 30)
                {
                    // the player barges in: what was heard is what is truncated
                    ConversationItemTruncate t = playout.Truncation();
                    truncate = new Dictionary<string, object>
                    {
                        { "heard_ms", playout.HeardMs },
                        { "handed_ms", (int)(buffer.Played * 1000L / rate) },
                        { "frame", Encoding.UTF8.GetString(Frames.Encode(t, Framing.Json)) },
                    };
                }
            }
        }
        return new Dictionary<string, object>
        {
            { "mode", "filter" }, { "rate", rate }, { "block", block }, { "latency_frames", latency },
            { "fired", fired }, { "truncate", truncate },
        };
    }

    private static Dictionary<string, object> Clip()
    {
        const int rate = 24000, block = 4096, ahead = rate * 800 / 1000, tick = 480; // 20 ms frames
        JitterBuffer buffer = new JitterBuffer(rate * 5, rate * 120 / 1000);
        Playout playout = new Playout(rate);
        List<object> fired = new List<object>();
        long position = 0; // the clip's cumulative play position (timeSamples, unwrapped)
        long rendered = 0;
        playout.BeginItem("item_b", buffer.Buffered);
        buffer.Write(new float[rate * 400 / 1000]); // the first 400 ms arrive...
        Schedule(playout, fired, () => new Dictionary<string, object>
        {
            { "heard_ms", playout.HeardMs },
            { "handed_ms", (int)(buffer.Played * 1000L / rate) },
            { "position_ms", (int)(position * 1000L / rate) },
        });
        bool restWritten = false;
        long gapFrom = -1, gapTo = -1;
        using (AudioThread audio = new AudioThread(buffer, playout))
        {
            for (int step = 0; step < 150; step++)
            {
                // Unity keeps the clip's reads `ahead` frames before its play position
                while (rendered < position + ahead)
                {
                    audio.Render(block);
                    rendered += block;
                }
                position += tick;
                playout.Heard(position);
                playout.Poll();
                if (!restWritten && step == 35)
                {
                    // ...the rest 700 ms late: the buffer ran dry, the clip played silence
                    buffer.Write(new float[rate * 600 / 1000]);
                    buffer.MarkEnded();
                    restWritten = true;
                }
                if (gapFrom < 0 && buffer.Underruns > 0) gapFrom = rendered;
                if (gapFrom >= 0 && gapTo < 0 && restWritten) gapTo = rendered;
            }
        }
        return new Dictionary<string, object>
        {
            { "mode", "clip" }, { "rate", rate }, { "tick", tick }, { "ahead_frames", ahead },
            { "fired", fired }, { "heard_total_ms", playout.HeardMs },
        };
    }
}
