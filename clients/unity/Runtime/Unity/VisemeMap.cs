// Which blendshape of a face shows each of the 15 visemes personae sends (npc.viseme).
using System;
using System.Collections.Generic;
using UnityEngine;

namespace Personae.Unity
{
    [CreateAssetMenu(fileName = "VisemeMap", menuName = "personae/Viseme Map")]
    public sealed class VisemeMap : ScriptableObject
    {
        [Serializable]
        public sealed class Entry
        {
            [Tooltip("One of sil, PP, FF, TH, DD, kk, CH, SS, nn, RR, aa, E, ih, oh, ou.")]
            public string viseme = "aa";
            [Tooltip("The blendshape on the face mesh that shows it (Oculus-style rigs: viseme_aa, ...).")]
            public string blendShape = "viseme_aa";
            [Range(0f, 1f)] public float weight = 1f;
        }

        [Tooltip("Several entries may share a viseme (jaw and lips); visemes left out leave the face alone.")]
        public List<Entry> entries = new List<Entry>();

        /// <summary>A map for rigs that name their blendshapes "<paramref name="prefix"/>" + viseme
        /// (Oculus, Ready Player Me and Reallusion rigs use "viseme_").</summary>
        public static VisemeMap Prefixed(string prefix)
        {
            var map = CreateInstance<VisemeMap>();
            foreach (var v in VisemeTrack.Names)
                if (v != "sil") map.entries.Add(new Entry { viseme = v, blendShape = prefix + v, weight = 1f });
            return map;
        }
    }
}
