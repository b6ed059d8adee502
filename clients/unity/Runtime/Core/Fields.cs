// Typed reads from a decoded event map, tolerant the way a client must be: a missing
// or mistyped field reads as its default instead of throwing, and a FieldAudit (when
// one is given) records what the peer sent that this client never read and what it
// read that the peer never sent. Tests use the audit to catch protocol drift.
using System;
using System.Collections.Generic;
using System.Globalization;

namespace Personae
{
    /// <summary>Fields a decode left unread (the client is behind) or found missing (renamed).</summary>
    public sealed class FieldAudit
    {
        public readonly List<string> Unread = new List<string>();
        public readonly List<string> Missing = new List<string>();
        public bool Clean { get { return Unread.Count == 0 && Missing.Count == 0; } }
    }

    public sealed class MapView
    {
        private readonly IDictionary<string, object> _map;
        private readonly string _path;
        private readonly FieldAudit _audit;
        private readonly HashSet<string> _read;

        public MapView(IDictionary<string, object> map, FieldAudit audit = null, string path = "")
        {
            _map = map ?? new Dictionary<string, object>();
            _audit = audit;
            _path = path;
            _read = audit != null ? new HashSet<string>() : null;
        }

        public IDictionary<string, object> Raw { get { return _map; } }

        public bool Has(string key) { return _map.ContainsKey(key); }

        public object Get(string key)
        {
            object value;
            if (_read != null) _read.Add(key);
            if (_map.TryGetValue(key, out value)) return value;
            if (_audit != null) _audit.Missing.Add(_path + key);
            return null;
        }

        public string Str(string key) { return Get(key) as string; }

        public long Long(string key, long fallback = 0)
        {
            object v = Get(key);
            if (v is long) return (long)v;
            if (v is double) return (long)(double)v;
            return fallback;
        }

        public int Int(string key, int fallback = 0) { return (int)Long(key, fallback); }

        public int? IntOrNull(string key)
        {
            object v = Get(key);
            if (v is long) return (int)(long)v;
            if (v is double) return (int)(double)v;
            return null;
        }

        public double? DoubleOrNull(string key)
        {
            object v = Get(key);
            if (v is double) return (double)v;
            if (v is long) return (long)v;
            return null;
        }

        public bool Bool(string key, bool fallback = false)
        {
            object v = Get(key);
            return v is bool ? (bool)v : fallback;
        }

        /// <summary>Audio: raw bytes in msgpack frames, base64 text in JSON frames.</summary>
        public byte[] Bytes(string key)
        {
            object v = Get(key);
            var b = v as byte[];
            if (b != null) return b;
            var s = v as string;
            if (s == null) return new byte[0];
            try { return Convert.FromBase64String(s); }
            catch (FormatException) { throw new PersonaeException(ErrorCodes.InvalidEvent, _path + key + " is not base64"); }
        }

        public MapView Map(string key)
        {
            var m = Get(key) as IDictionary<string, object>;
            return m == null ? null : new MapView(m, _audit, _path + key + ".");
        }

        public List<string> StrList(string key)
        {
            var list = Get(key) as List<object>;
            if (list == null) return null;
            var result = new List<string>(list.Count);
            foreach (object o in list)
            {
                var s = o as string;
                if (s != null) result.Add(s);
            }
            return result;
        }

        public List<MapView> MapList(string key)
        {
            var list = Get(key) as List<object>;
            var result = new List<MapView>();
            if (list == null) return result;
            for (int i = 0; i < list.Count; i++)
            {
                var m = list[i] as IDictionary<string, object>;
                if (m != null) result.Add(new MapView(m, _audit, _path + key + "[" + i + "]."));
            }
            return result;
        }

        /// <summary>A map as the peer sent it (values: long, double, string, bool, lists, maps).</summary>
        public Dictionary<string, object> Object(string key)
        {
            var m = Get(key) as IDictionary<string, object>;
            return m == null ? null : new Dictionary<string, object>(m);
        }

        public Dictionary<string, double> DoubleMap(string key)
        {
            var result = new Dictionary<string, double>();
            var m = Get(key) as IDictionary<string, object>;
            if (m == null) return result;
            foreach (var kv in m)
            {
                if (kv.Value is double) result[kv.Key] = (double)kv.Value;
                else if (kv.Value is long) result[kv.Key] = (long)kv.Value;
            }
            return result;
        }

        /// <summary>Records every key the peer sent that nobody read. Call once per map.</summary>
        public void Finish()
        {
            if (_audit == null) return;
            foreach (string key in _map.Keys)
                if (!_read.Contains(key)) _audit.Unread.Add(_path + key);
        }

        public override string ToString()
        {
            return string.Format(CultureInfo.InvariantCulture, "MapView({0} keys)", _map.Count);
        }
    }
}
