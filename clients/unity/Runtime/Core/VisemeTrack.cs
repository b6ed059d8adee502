using System;
using System.Collections.Generic;

namespace Personae
{
    /// <summary>
    /// One character's mouth: the visemes of the reply it is speaking, looked up by how much
    /// of that reply's audio the player has heard. Feed it every NpcViseme of the character
    /// (<see cref="Add"/>), ask <see cref="Weights"/> once a frame with the heard position
    /// (ms of the reply's audio played out, not received), and <see cref="Cut"/> it on
    /// barge-in. Engine-agnostic: PersonaeLipSync drives blendshapes from it in Unity.
    /// </summary>
    public sealed class VisemeTrack
    {
        /// <summary>The 15 Oculus/Meta visemes, in their usual order (index = viseme id).</summary>
        public static readonly string[] Names =
        {
            "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou",
        };

        private readonly List<Viseme> _visemes = new List<Viseme>();
        private readonly List<WordTiming> _words = new List<WordTiming>();
        private int _cutMs = int.MaxValue;

        /// <summary>Milliseconds over which one shape blends into the next (0: snap).</summary>
        public double BlendMs = 60;

        /// <summary>The response whose visemes the track holds (null before the first).</summary>
        public string ResponseId { get; private set; }

        public int Count { get { return _visemes.Count; } }

        /// <summary>Adds an event's visemes and words; a new response replaces the old one's.</summary>
        public void Add(NpcViseme e)
        {
            if (e == null) return;
            if (e.ResponseId != ResponseId) Clear(e.ResponseId);
            foreach (var v in e.Visemes) if (v.StartMs < _cutMs) Insert(_visemes, v, v.StartMs);
            foreach (var w in e.Words) if (w.StartMs < _cutMs) Insert(_words, w, w.StartMs);
        }

        /// <summary>Barge-in or truncate: nothing at or after <paramref name="atMs"/> is shown.</summary>
        public void Cut(int atMs)
        {
            _cutMs = Math.Min(_cutMs, atMs);
            _visemes.RemoveAll(v => v.StartMs >= _cutMs);
            _words.RemoveAll(w => w.StartMs >= _cutMs);
        }

        public void Clear(string responseId = null)
        {
            _visemes.Clear();
            _words.Clear();
            _cutMs = int.MaxValue;
            ResponseId = responseId;
        }

        /// <summary>The viseme showing at <paramref name="heardMs"/>; "sil" outside the reply.</summary>
        public string At(double heardMs)
        {
            int i = IndexAt(heardMs);
            return i < 0 ? "sil" : _visemes[i].Name;
        }

        /// <summary>The word being said at <paramref name="heardMs"/>, or null between words.</summary>
        public WordTiming WordAt(double heardMs)
        {
            if (heardMs >= _cutMs) return null;
            foreach (var w in _words)
                if (w.StartMs <= heardMs && heardMs < w.StartMs + Math.Max(1, w.DurationMs)) return w;
            return null;
        }

        /// <summary>
        /// Weight 0..1 of each viseme at <paramref name="heardMs"/>: the current one fades in
        /// over <see cref="BlendMs"/> from the one before it; weights sum to 1 ("sil" included).
        /// </summary>
        public Dictionary<string, float> Weights(double heardMs)
        {
            var weights = new Dictionary<string, float>();
            foreach (var n in Names) weights[n] = 0f;
            int i = IndexAt(heardMs);
            if (i < 0)
            {
                weights["sil"] = 1f;
                return weights;
            }
            Viseme cur = _visemes[i];
            string before = i > 0 && _visemes[i - 1].StartMs + _visemes[i - 1].DurationMs >= cur.StartMs
                ? _visemes[i - 1].Name : "sil";
            float t = BlendMs <= 0 ? 1f : (float)Math.Min(1.0, Math.Max(0.0, (heardMs - cur.StartMs) / BlendMs));
            Add(weights, cur.Name, t);
            Add(weights, before, 1f - t);
            return weights;
        }

        private int IndexAt(double heardMs)
        {
            if (heardMs < 0 || heardMs >= _cutMs) return -1;
            // visemes tile each piece: the last one starting at or before heardMs, if it still lasts
            int lo = 0, hi = _visemes.Count - 1, found = -1;
            while (lo <= hi)
            {
                int mid = (lo + hi) / 2;
                if (_visemes[mid].StartMs <= heardMs) { found = mid; lo = mid + 1; }
                else hi = mid - 1;
            }
            if (found < 0) return -1;
            Viseme v = _visemes[found];
            return heardMs < v.StartMs + Math.Max(1, v.DurationMs) ? found : -1;
        }

        private static void Add(Dictionary<string, float> weights, string name, float w)
        {
            float now;
            weights.TryGetValue(name, out now);
            weights[name] = now + w;
        }

        private static void Insert<T>(List<T> list, T item, int startMs) where T : class
        {
            // events arrive in order; keep it sorted even if one does not
            int i = list.Count;
            while (i > 0 && StartOf(list[i - 1]) > startMs) i--;
            list.Insert(i, item);
        }

        private static int StartOf(object o)
        {
            var v = o as Viseme;
            return v != null ? v.StartMs : ((WordTiming)o).StartMs;
        }
    }
}
