// Edit-mode tests of VisemeTrack (lip-sync from npc.viseme), run in Unity's Test Runner
// and outside Unity by tests/clients/test_unity_package.py.
using System;
using System.Collections.Generic;
using NUnit.Framework;

namespace Personae.Tests
{
    [TestFixture]
    public sealed class VisemeTrackTests
    {
        private static NpcViseme Event(string responseId, params object[] spans)
        {
            var e = new NpcViseme { ResponseId = responseId, CharacterId = "bram" };
            for (int i = 0; i < spans.Length; i += 3)
                e.Visemes.Add(new Viseme { Name = (string)spans[i], StartMs = (int)spans[i + 1], DurationMs = (int)spans[i + 2] });
            return e;
        }

        [Test]
        public void ShowsTheVisemeAtTheHeardPosition()
        {
            var track = new VisemeTrack();
            track.Add(Event("r1", "sil", 0, 50, "PP", 50, 80, "aa", 130, 120));
            track.Add(Event("r1", "nn", 250, 60, "sil", 310, 90));
            Assert.AreEqual("sil", track.At(-5));
            Assert.AreEqual("sil", track.At(10));
            Assert.AreEqual("PP", track.At(50));
            Assert.AreEqual("PP", track.At(129.9));
            Assert.AreEqual("aa", track.At(200));
            Assert.AreEqual("nn", track.At(260));
            Assert.AreEqual("sil", track.At(400)); // past the end of the reply
            Assert.AreEqual(5, track.Count);
        }

        [Test]
        public void BlendsIntoEachShapeAndWeightsSumToOne()
        {
            var track = new VisemeTrack { BlendMs = 40 };
            track.Add(Event("r1", "PP", 0, 100, "aa", 100, 100));
            Dictionary<string, float> w = track.Weights(120); // halfway through the blend
            Assert.AreEqual(0.5, w["aa"], 1e-4);
            Assert.AreEqual(0.5, w["PP"], 1e-4);
            w = track.Weights(190);
            Assert.AreEqual(1.0, w["aa"], 1e-4);
            Assert.AreEqual(0.0, w["PP"], 1e-4);
            foreach (double t in new[] { -10.0, 0, 20, 99, 100, 150, 250 })
            {
                float sum = 0;
                foreach (var kv in track.Weights(t)) sum += kv.Value;
                Assert.AreEqual(1.0, sum, 1e-4, "at " + t);
                Assert.AreEqual(15, track.Weights(t).Count);
            }
            Assert.AreEqual(1.0, track.Weights(500)["sil"], 1e-4);
        }

        [Test]
        public void ACutHidesEverythingFromTheCutOn()
        {
            var track = new VisemeTrack();
            track.Add(Event("r1", "PP", 0, 100, "aa", 100, 100, "E", 200, 100));
            track.Cut(150);
            Assert.AreEqual("PP", track.At(50));
            Assert.AreEqual("aa", track.At(120));
            Assert.AreEqual("sil", track.At(160)); // the player stopped hearing the reply at 150
            Assert.AreEqual("sil", track.At(250));
            track.Add(Event("r1", "oh", 300, 100)); // late visemes of the cut reply stay hidden
            Assert.AreEqual("sil", track.At(320));
            // the next reply starts clean
            track.Add(Event("r2", "ou", 0, 100));
            Assert.AreEqual("r2", track.ResponseId);
            Assert.AreEqual("ou", track.At(50));
            Assert.AreEqual(1, track.Count);
        }

        [Test]
        public void FindsTheWordBeingSaid()
        {
            var track = new VisemeTrack();
            var e = Event("r1", "sil", 0, 40, "aa", 40, 200);
            e.Words.Add(new WordTiming { Text = "Aye", StartMs = 40, DurationMs = 200 });
            e.Words.Add(new WordTiming { Text = "boss", StartMs = 300, DurationMs = 250 });
            track.Add(e);
            Assert.IsNull(track.WordAt(10));
            Assert.AreEqual("Aye", track.WordAt(100).Text);
            Assert.IsNull(track.WordAt(260));
            Assert.AreEqual("boss", track.WordAt(300).Text);
            track.Cut(320);
            Assert.AreEqual("Aye", track.WordAt(100).Text);
            Assert.IsNull(track.WordAt(330));
        }

        [Test]
        public void FollowsAHeardClockNotTheArrivalOfEvents()
        {
            // the whole reply's visemes arrive at once; the mouth follows only the heard clock
            var track = new VisemeTrack { BlendMs = 0 };
            track.Add(Event("r1", "PP", 0, 100, "aa", 100, 100, "E", 200, 100));
            double heard = 0;
            Func<double> heardMs = () => heard;
            var shown = new List<string>();
            for (int frame = 0; frame < 6; frame++)
            {
                shown.Add(track.At(heardMs()));
                heard += 60; // a 60 ms frame of audio played out
            }
            Assert.AreEqual("PP,PP,aa,aa,E,sil", string.Join(",", shown.ToArray()));
        }
    }
}
