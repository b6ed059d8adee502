// A small msgpack reader and writer: exactly what the personae protocol needs.
//
// Values map to plain .NET objects: null, bool, long, double, string, byte[] (bin),
// List<object> (array) and Dictionary<string, object> (map). Integers always read as
// long, floats as double, so callers never guess the width the peer chose.
using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Personae
{
    /// <summary>A frame that is not valid msgpack, or a value the writer cannot encode.</summary>
    public sealed class MsgPackException : Exception
    {
        public MsgPackException(string message) : base(message) { }
    }

    public static class MsgPack
    {
        /// <summary>Encodes one value (usually an event map) as a msgpack document.</summary>
        public static byte[] Serialize(object value)
        {
            var writer = new MsgPackWriter();
            writer.Write(value);
            return writer.ToArray();
        }

        /// <summary>Decodes exactly one msgpack document; trailing bytes are an error.</summary>
        public static object Deserialize(byte[] data)
        {
            return Deserialize(data, 0, data.Length);
        }

        public static object Deserialize(byte[] data, int offset, int count)
        {
            var reader = new MsgPackReader(data, offset, count);
            object value = reader.Read();
            if (!reader.AtEnd)
                throw new MsgPackException("extra bytes after the msgpack document");
            return value;
        }
    }

    public sealed class MsgPackWriter
    {
        private readonly MemoryStream _out = new MemoryStream();
        private int _depth;
        private const int MaxDepth = 64;

        public byte[] ToArray() { return _out.ToArray(); }

        public void Write(object value)
        {
            if (value == null) { _out.WriteByte(0xc0); return; }
            if (value is bool) { _out.WriteByte((bool)value ? (byte)0xc3 : (byte)0xc2); return; }
            if (value is string) { WriteString((string)value); return; }
            if (value is byte[]) { WriteBinary((byte[])value); return; }
            if (value is int) { WriteInteger((int)value); return; }
            if (value is long) { WriteInteger((long)value); return; }
            if (value is short) { WriteInteger((short)value); return; }
            if (value is byte) { WriteInteger((byte)value); return; }
            if (value is uint) { WriteInteger((uint)value); return; }
            if (value is double) { WriteDouble((double)value); return; }
            if (value is float) { WriteDouble((float)value); return; }
            if (value is Enum) { WriteString(value.ToString()); return; }
            _depth++;
            if (_depth > MaxDepth) throw new MsgPackException("value nested too deeply");
            try
            {
                var dict = value as IDictionary;
                if (dict != null) { WriteMap(dict); return; }
                var list = value as IList;
                if (list != null) { WriteArray(list); return; }
            }
            finally { _depth--; }
            throw new MsgPackException("cannot encode a " + value.GetType().Name + " as msgpack");
        }

        private void WriteMap(IDictionary map)
        {
            WriteHeader(map.Count, 0x80, 15, 0xde, 0xdf);
            foreach (DictionaryEntry entry in map)
            {
                Write(entry.Key);
                Write(entry.Value);
            }
        }

        private void WriteArray(IList list)
        {
            WriteHeader(list.Count, 0x90, 15, 0xdc, 0xdd);
            foreach (object item in list) Write(item);
        }

        private void WriteHeader(int count, byte fix, int fixMax, byte b16, byte b32)
        {
            if (count <= fixMax) _out.WriteByte((byte)(fix | count));
            else if (count <= 0xffff) { _out.WriteByte(b16); WriteBigEndian((ulong)count, 2); }
            else { _out.WriteByte(b32); WriteBigEndian((ulong)count, 4); }
        }

        public void WriteInteger(long v)
        {
            if (v >= 0)
            {
                if (v <= 0x7f) _out.WriteByte((byte)v);
                else if (v <= 0xff) { _out.WriteByte(0xcc); _out.WriteByte((byte)v); }
                else if (v <= 0xffff) { _out.WriteByte(0xcd); WriteBigEndian((ulong)v, 2); }
                else if (v <= 0xffffffffL) { _out.WriteByte(0xce); WriteBigEndian((ulong)v, 4); }
                else { _out.WriteByte(0xcf); WriteBigEndian((ulong)v, 8); }
            }
            else
            {
                if (v >= -32) _out.WriteByte((byte)(sbyte)v);
                else if (v >= sbyte.MinValue) { _out.WriteByte(0xd0); _out.WriteByte((byte)(sbyte)v); }
                else if (v >= short.MinValue) { _out.WriteByte(0xd1); WriteBigEndian((ulong)(ushort)(short)v, 2); }
                else if (v >= int.MinValue) { _out.WriteByte(0xd2); WriteBigEndian((ulong)(uint)(int)v, 4); }
                else { _out.WriteByte(0xd3); WriteBigEndian((ulong)v, 8); }
            }
        }

        public void WriteDouble(double v)
        {
            _out.WriteByte(0xcb);
            WriteBigEndian((ulong)BitConverter.DoubleToInt64Bits(v), 8);
        }

        public void WriteString(string s)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(s);
            int n = bytes.Length;
            if (n <= 31) _out.WriteByte((byte)(0xa0 | n));
            else if (n <= 0xff) { _out.WriteByte(0xd9); _out.WriteByte((byte)n); }
            else if (n <= 0xffff) { _out.WriteByte(0xda); WriteBigEndian((ulong)n, 2); }
            else { _out.WriteByte(0xdb); WriteBigEndian((ulong)n, 4); }
            _out.Write(bytes, 0, n);
        }

        public void WriteBinary(byte[] b)
        {
            int n = b.Length;
            if (n <= 0xff) { _out.WriteByte(0xc4); _out.WriteByte((byte)n); }
            else if (n <= 0xffff) { _out.WriteByte(0xc5); WriteBigEndian((ulong)n, 2); }
            else { _out.WriteByte(0xc6); WriteBigEndian((ulong)n, 4); }
            _out.Write(b, 0, n);
        }

        private void WriteBigEndian(ulong v, int bytes)
        {
            for (int shift = (bytes - 1) * 8; shift >= 0; shift -= 8)
                _out.WriteByte((byte)(v >> shift));
        }
    }

    public sealed class MsgPackReader
    {
        private readonly byte[] _data;
        private int _pos;
        private readonly int _end;
        private int _depth;
        private const int MaxDepth = 64;

        public MsgPackReader(byte[] data, int offset, int count)
        {
            if (data == null) throw new ArgumentNullException("data");
            if (offset < 0 || count < 0 || offset + count > data.Length)
                throw new ArgumentOutOfRangeException("count");
            _data = data;
            _pos = offset;
            _end = offset + count;
        }

        public bool AtEnd { get { return _pos >= _end; } }

        public object Read()
        {
            byte b = Take();
            if (b <= 0x7f) return (long)b;
            if (b >= 0xe0) return (long)(sbyte)b;
            if ((b & 0xf0) == 0x80) return ReadMap(b & 0x0f);
            if ((b & 0xf0) == 0x90) return ReadArray(b & 0x0f);
            if ((b & 0xe0) == 0xa0) return ReadString(b & 0x1f);
            switch (b)
            {
                case 0xc0: return null;
                case 0xc2: return false;
                case 0xc3: return true;
                case 0xc4: return ReadBytes((int)ReadUnsigned(1));
                case 0xc5: return ReadBytes((int)ReadUnsigned(2));
                case 0xc6: return ReadBytes(Length(ReadUnsigned(4)));
                case 0xca: return (double)BitConverter.ToSingle(BitConverter.GetBytes((int)(uint)ReadUnsigned(4)), 0);
                case 0xcb: return BitConverter.Int64BitsToDouble((long)ReadUnsigned(8));
                case 0xcc: return (long)ReadUnsigned(1);
                case 0xcd: return (long)ReadUnsigned(2);
                case 0xce: return (long)ReadUnsigned(4);
                case 0xcf:
                    ulong u = ReadUnsigned(8);
                    if (u > long.MaxValue) throw new MsgPackException("uint64 value out of range");
                    return (long)u;
                case 0xd0: return (long)(sbyte)ReadUnsigned(1);
                case 0xd1: return (long)(short)ReadUnsigned(2);
                case 0xd2: return (long)(int)ReadUnsigned(4);
                case 0xd3: return (long)ReadUnsigned(8);
                case 0xd9: return ReadString((int)ReadUnsigned(1));
                case 0xda: return ReadString((int)ReadUnsigned(2));
                case 0xdb: return ReadString(Length(ReadUnsigned(4)));
                case 0xdc: return ReadArray((int)ReadUnsigned(2));
                case 0xdd: return ReadArray(Length(ReadUnsigned(4)));
                case 0xde: return ReadMap((int)ReadUnsigned(2));
                case 0xdf: return ReadMap(Length(ReadUnsigned(4)));
                case 0xd4: Skip(2); return null;   // fixext: no protocol field uses ext types
                case 0xd5: Skip(3); return null;
                case 0xd6: Skip(5); return null;
                case 0xd7: Skip(9); return null;
                case 0xd8: Skip(17); return null;
                case 0xc7: { int n = (int)ReadUnsigned(1); Skip(n + 1); return null; }
                case 0xc8: { int n = (int)ReadUnsigned(2); Skip(n + 1); return null; }
                case 0xc9: { int n = Length(ReadUnsigned(4)); Skip(n + 1); return null; }
            }
            throw new MsgPackException("invalid msgpack type byte 0x" + b.ToString("x2"));
        }

        private Dictionary<string, object> ReadMap(int count)
        {
            Enter();
            var map = new Dictionary<string, object>(Math.Min(count, 64));
            for (int i = 0; i < count; i++)
            {
                string key = Read() as string;
                if (key == null) throw new MsgPackException("map keys must be strings");
                map[key] = Read();
            }
            _depth--;
            return map;
        }

        private List<object> ReadArray(int count)
        {
            Enter();
            if (count > _end - _pos) throw new MsgPackException("array longer than the frame");
            var list = new List<object>(count);
            for (int i = 0; i < count; i++) list.Add(Read());
            _depth--;
            return list;
        }

        private void Enter()
        {
            if (++_depth > MaxDepth) throw new MsgPackException("msgpack nested too deeply");
        }

        private string ReadString(int n)
        {
            Need(n);
            string s = Encoding.UTF8.GetString(_data, _pos, n);
            _pos += n;
            return s;
        }

        private byte[] ReadBytes(int n)
        {
            Need(n);
            var b = new byte[n];
            Buffer.BlockCopy(_data, _pos, b, 0, n);
            _pos += n;
            return b;
        }

        private ulong ReadUnsigned(int bytes)
        {
            Need(bytes);
            ulong v = 0;
            for (int i = 0; i < bytes; i++) v = (v << 8) | _data[_pos++];
            return v;
        }

        private static int Length(ulong n)
        {
            if (n > int.MaxValue) throw new MsgPackException("length out of range");
            return (int)n;
        }

        private void Skip(int n) { Need(n); _pos += n; }

        private byte Take() { Need(1); return _data[_pos++]; }

        private void Need(int n)
        {
            if (n < 0 || _end - _pos < n) throw new MsgPackException("truncated msgpack frame");
        }
    }
}
