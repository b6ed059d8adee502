// Edit-mode tests for the engine-agnostic core. Unity runs them in the Test Runner;
// CI runs the same file outside Unity (tests/clients/test_csharp.py, with a minimal
// NUnit stand-in), so keep to [Test], Assert.AreEqual/IsTrue/IsFalse/IsNull/IsNotNull/Throws.
using System;
using System.Collections.Generic;
using NUnit.Framework;

namespace Personae.Tests
{
    [TestFixture]
    public sealed class MsgPackTests
    {
        [Test]
        public void RoundTripsEveryValueKind()
        {
            var map = new Dictionary<string, object>
            {
                { "nil", null }, { "t", true }, { "f", false }, { "small", 5L }, { "neg", -33L },
                { "big", 5000000000L }, { "minus_big", -5000000000L }, { "pi", 3.25 }, { "text", "héllo" },
                { "long_text", new string('x', 300) }, { "bin", new byte[] { 0, 1, 255 } },
                { "list", new List<object> { 1L, "a" } }, { "nested", new Dictionary<string, object> { { "k", 2L } } },
            };
            var back = (Dictionary<string, object>)MsgPack.Deserialize(MsgPack.Serialize(map));
            Assert.AreEqual(map.Count, back.Count);
            Assert.IsNull(back["nil"]);
            Assert.AreEqual(true, back["t"]);
            Assert.AreEqual(5L, back["small"]);
            Assert.AreEqual(-33L, back["neg"]);
            Assert.AreEqual(5000000000L, back["big"]);
            Assert.AreEqual(-5000000000L, back["minus_big"]);
            Assert.AreEqual(3.25, back["pi"]);
            Assert.AreEqual("héllo", back["text"]);
            Assert.AreEqual(300, ((string)back["long_text"]).Length);
            Assert.AreEqual(3, ((byte[])back["bin"]).Length);
            Assert.AreEqual(255, ((byte[])back["bin"])[2]);
            Assert.AreEqual("a", ((List<object>)back["list"])[1]);
            Assert.AreEqual(2L, ((Dictionary<string, object>)back["nested"])["k"]);
        }

        [Test]
        public void RejectsTruncatedAndTrailingBytes()
        {
            byte[] frame = MsgPack.Serialize(new Dictionary<string, object> { { "type", "npc.route" } });
            var cut = new byte[frame.Length - 1];
            Array.Copy(frame, cut, cut.Length);
            Assert.Throws<MsgPackException>(() => MsgPack.Deserialize(cut));
            var longer = new byte[frame.Length + 1];
            Array.Copy(frame, longer, frame.Length);
            Assert.Throws<MsgPackException>(() => MsgPack.Deserialize(longer));
            Assert.Throws<MsgPackException>(() => MsgPack.Deserialize(new byte[] { 0xc1 }));
        }
    }

    [TestFixture]
    public sealed class JsonTests
    {
        [Test]
        public void RoundTripsWithEscapesAndNumbers()
        {
            string text = Json.Serialize(new Dictionary<string, object> { { "s", "a\"b\\c\n" }, { "n", 42 }, { "x", 0.5 }, { "b", new byte[] { 1, 2 } } });
            var back = (Dictionary<string, object>)Json.Deserialize(text);
            Assert.AreEqual("a\"b\\c\n", back["s"]);
            Assert.AreEqual(42L, back["n"]);
            Assert.AreEqual(0.5, back["x"]);
            Assert.AreEqual("AQI=", back["b"]);
            Assert.AreEqual("é", ((Dictionary<string, object>)Json.Deserialize("{\"u\": \"\\u00e9\"}"))["u"]);
            Assert.Throws<JsonException>(() => Json.Deserialize("{\"a\": }"));
        }
    }

    [TestFixture]
    public sealed class ProtocolTests
    {
        [Test]
        public void UnknownEventTypesDecodeAsUnknownEvent()
        {
            byte[] frame = MsgPack.Serialize(new Dictionary<string, object> { { "type", "npc.gaze" }, { "at", "player" } });
            ServerEvent e = Frames.Decode(frame, frame.Length, true);
            Assert.IsTrue(e is UnknownEvent);
            Assert.AreEqual("npc.gaze", e.Type);
        }

        [Test]
        public void AudioDeltaReadsRawBytesAndBase64()
        {
            var map = new Dictionary<string, object>
            {
                { "type", EventTypes.OutputAudioDelta }, { "response_id", "r" }, { "item_id", "i" },
                { "character", "bram" }, { "delta", new byte[] { 1, 0, 2, 0 } }, { "offset_ms", 40L },
            };
            byte[] binary = MsgPack.Serialize(map);
            var fromMsgPack = (OutputAudioDelta)Frames.Decode(binary, binary.Length, true);
            map["delta"] = "AQACAA==";
            byte[] text = System.Text.Encoding.UTF8.GetBytes(Json.Serialize(map));
            var fromJson = (OutputAudioDelta)Frames.Decode(text, text.Length, false);
            Assert.AreEqual(4, fromMsgPack.Delta.Length);
            Assert.AreEqual(4, fromJson.Delta.Length);
            Assert.AreEqual(2, fromJson.Delta[2]);
            Assert.AreEqual("bram", fromJson.Character);
            Assert.AreEqual(40, fromMsgPack.OffsetMs);
        }

        [Test]
        public void FramesWithoutTypeOrNotMapsAreInvalid()
        {
            byte[] list = MsgPack.Serialize(new List<object> { 1L });
            var e = Assert.Throws<PersonaeException>(() => Frames.Decode(list, list.Length, true));
            Assert.AreEqual(ErrorCodes.InvalidEvent, e.Code);
            byte[] junk = System.Text.Encoding.UTF8.GetBytes("{not json");
            e = Assert.Throws<PersonaeException>(() => Frames.Decode(junk, junk.Length, false));
            Assert.AreEqual(ErrorCodes.MalformedFrame, e.Code);
        }

        [Test]
        public void SessionUpdateSendsOnlyWhatWasSet()
        {
            var update = new SessionUpdate { Session = new SessionConfig { TurnDetection = null } };
            var session = (Dictionary<string, object>)update.ToMap()["session"];
            Assert.AreEqual(1, session.Count);
            Assert.IsTrue(session.ContainsKey("turn_detection"));
            Assert.IsNull(session["turn_detection"]);
            var merged = new SessionConfig { Characters = new[] { "bram" } };
            merged.MergeFrom(new SessionConfig { InputSampleRate = 24000 });
            Assert.AreEqual(24000, merged.InputSampleRate);
            Assert.AreEqual("bram", merged.Characters[0]);
        }
    }

    [TestFixture]
    public sealed class AudioTests
    {
        [Test]
        public void Pcm16RoundTripsAndClips()
        {
            byte[] pcm = Pcm16.FromFloat(new[] { 0f, 0.5f, -1f, 2f });
            float[] back = Pcm16.ToFloat(pcm);
            Assert.AreEqual(0.5, back[1], 1e-4);
            Assert.AreEqual(-1.0, back[2], 1e-4);
            Assert.AreEqual(32767.0 / 32768.0, back[3], 1e-6);
        }

        [Test]
        public void ResamplerKeepsDurationAcrossChunks()
        {
            foreach (int[] rates in new[] { new[] { 48000, 16000 }, new[] { 24000, 48000 }, new[] { 22050, 16000 }, new[] { 44100, 48000 } })
            {
                var r = new Resampler(rates[0], rates[1]);
                int produced = 0;
                var chunk = new float[rates[0] / 50]; // 20 ms
                for (int i = 0; i < 50; i++) produced += r.Process(chunk).Length; // one second
                Assert.IsTrue(Math.Abs(produced - rates[1]) <= 2, rates[0] + "->" + rates[1] + " gave " + produced);
            }
        }

        [Test]
        public void ResamplerPreservesALowTone()
        {
            var r = new Resampler(48000, 16000);
            var input = new float[4800];
            for (int i = 0; i < input.Length; i++) input[i] = (float)Math.Sin(2 * Math.PI * 440 * i / 48000.0);
            float[] output = r.Process(input);
            float rms = Pcm16.Rms(output, 100, output.Length - 100);
            Assert.AreEqual(Math.Sqrt(0.5), rms, 0.05);
        }

        [Test]
        public void JitterBufferWaitsForPrebufferThenPlaysInOrder()
        {
            var buffer = new JitterBuffer(100, 10);
            var block = new float[4];
            buffer.Write(new float[] { 1, 2, 3 });
            Assert.AreEqual(0, buffer.Read(block, 0, 4)); // below the prebuffer: silence
            Assert.AreEqual(0f, block[0]);
            buffer.Write(new float[] { 4, 5, 6, 7, 8, 9, 10 });
            Assert.AreEqual(4, buffer.Read(block, 0, 4));
            Assert.AreEqual(1f, block[0]);
            Assert.AreEqual(4f, block[3]);
            buffer.MarkEnded();
            var rest = new float[10];
            Assert.AreEqual(6, buffer.Read(rest, 0, 10)); // the tail plays, then silence
            Assert.AreEqual(10f, rest[5]);
            Assert.AreEqual(0f, rest[6]);
            Assert.AreEqual(10L, buffer.Played);
            Assert.AreEqual(0, buffer.Underruns);
        }

        [Test]
        public void JitterBufferDropsTheOldestWhenFull()
        {
            var buffer = new JitterBuffer(4, 0);
            buffer.Write(new float[] { 1, 2, 3, 4, 5, 6 });
            Assert.AreEqual(2L, buffer.Dropped);
            var block = new float[4];
            Assert.AreEqual(4, buffer.Read(block, 0, 4));
            Assert.AreEqual(3f, block[0]);
            buffer.Write(new float[] { 7 });
            buffer.Clear();
            Assert.AreEqual(0, buffer.Buffered);
        }

        [Test]
        public void BackoffGrowsAndIsCapped()
        {
            var backoff = new Backoff(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(1000), new Random(7));
            double first = backoff.Next().TotalMilliseconds;
            Assert.IsTrue(first >= 50 && first <= 100, "first " + first);
            double last = 0;
            for (int i = 0; i < 20; i++) last = backoff.Next().TotalMilliseconds;
            Assert.IsTrue(last >= 500 && last <= 1000, "capped " + last);
            backoff.Reset();
            Assert.AreEqual(0, backoff.Attempt);
        }
    }

    [TestFixture]
    public sealed class CallbackQueueTests
    {
        [Test]
        public void RunsCallbacksInOrderOnTheDrainingThread()
        {
            var queue = new CallbackQueue();
            var seen = new List<int>();
            int drainer = System.Threading.Thread.CurrentThread.ManagedThreadId;
            bool sameThread = true;
            var worker = new System.Threading.Thread(() =>
            {
                for (int i = 0; i < 100; i++)
                {
                    int n = i;
                    queue.Post(() =>
                    {
                        sameThread &= System.Threading.Thread.CurrentThread.ManagedThreadId == drainer;
                        seen.Add(n);
                    });
                }
            });
            worker.Start();
            worker.Join();
            queue.Post(() => queue.Post(() => seen.Add(-1))); // queued by a callback: next drain
            Assert.AreEqual(101, queue.Drain());
            Assert.AreEqual(100, seen.Count);
            Assert.IsTrue(sameThread);
            for (int i = 0; i < 100; i++) Assert.AreEqual(i, seen[i]);
            Assert.AreEqual(1, queue.Drain());
            Assert.AreEqual(-1, seen[100]);
        }
    }
}
