// A small JSON reader and writer for the protocol's text framing (browser-style peers,
// and the daemon's first `session.created`, which it sends as JSON before the client
// has spoken). Values map to the same objects as MsgPack: null, bool, long, double,
// string, List<object>, Dictionary<string, object>. byte[] is written as base64.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Personae
{
    public sealed class JsonException : Exception
    {
        public JsonException(string message) : base(message) { }
    }

    public static class Json
    {
        public static string Serialize(object value)
        {
            var sb = new StringBuilder(256);
            Write(sb, value, 0);
            return sb.ToString();
        }

        public static object Deserialize(string text)
        {
            var parser = new Parser(text);
            object value = parser.ParseValue(0);
            parser.SkipWhitespace();
            if (!parser.AtEnd) throw new JsonException("extra characters after the JSON value");
            return value;
        }

        private static void Write(StringBuilder sb, object value, int depth)
        {
            if (depth > 64) throw new JsonException("value nested too deeply");
            if (value == null) { sb.Append("null"); return; }
            if (value is bool) { sb.Append((bool)value ? "true" : "false"); return; }
            if (value is string) { WriteString(sb, (string)value); return; }
            if (value is byte[]) { WriteString(sb, Convert.ToBase64String((byte[])value)); return; }
            if (value is int || value is long || value is short || value is byte || value is uint)
            {
                sb.Append(Convert.ToInt64(value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture));
                return;
            }
            if (value is double || value is float)
            {
                double d = Convert.ToDouble(value, CultureInfo.InvariantCulture);
                if (double.IsNaN(d) || double.IsInfinity(d)) throw new JsonException("JSON has no NaN or infinity");
                sb.Append(d.ToString("R", CultureInfo.InvariantCulture));
                return;
            }
            if (value is Enum) { WriteString(sb, value.ToString()); return; }
            var map = value as IDictionary;
            if (map != null)
            {
                sb.Append('{');
                bool first = true;
                foreach (DictionaryEntry e in map)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    WriteString(sb, Convert.ToString(e.Key, CultureInfo.InvariantCulture));
                    sb.Append(':');
                    Write(sb, e.Value, depth + 1);
                }
                sb.Append('}');
                return;
            }
            var list = value as IList;
            if (list != null)
            {
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(',');
                    Write(sb, list[i], depth + 1);
                }
                sb.Append(']');
                return;
            }
            throw new JsonException("cannot encode a " + value.GetType().Name + " as JSON");
        }

        private static void WriteString(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4"));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }

        private sealed class Parser
        {
            private readonly string _s;
            private int _i;

            public Parser(string s)
            {
                if (s == null) throw new ArgumentNullException("s");
                _s = s;
            }

            public bool AtEnd { get { return _i >= _s.Length; } }

            public void SkipWhitespace()
            {
                while (_i < _s.Length && (_s[_i] == ' ' || _s[_i] == '\t' || _s[_i] == '\n' || _s[_i] == '\r')) _i++;
            }

            public object ParseValue(int depth)
            {
                if (depth > 64) throw new JsonException("JSON nested too deeply");
                SkipWhitespace();
                if (AtEnd) throw new JsonException("unexpected end of JSON");
                char c = _s[_i];
                switch (c)
                {
                    case '{': return ParseObject(depth);
                    case '[': return ParseArray(depth);
                    case '"': return ParseString();
                    case 't': Expect("true"); return true;
                    case 'f': Expect("false"); return false;
                    case 'n': Expect("null"); return null;
                }
                if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber();
                throw new JsonException("unexpected character '" + c + "' at " + _i);
            }

            private Dictionary<string, object> ParseObject(int depth)
            {
                var map = new Dictionary<string, object>();
                _i++;
                SkipWhitespace();
                if (Peek() == '}') { _i++; return map; }
                while (true)
                {
                    SkipWhitespace();
                    if (Peek() != '"') throw new JsonException("expected a string key at " + _i);
                    string key = ParseString();
                    SkipWhitespace();
                    if (Peek() != ':') throw new JsonException("expected ':' at " + _i);
                    _i++;
                    map[key] = ParseValue(depth + 1);
                    SkipWhitespace();
                    char c = Peek();
                    _i++;
                    if (c == '}') return map;
                    if (c != ',') throw new JsonException("expected ',' or '}' at " + (_i - 1));
                }
            }

            private List<object> ParseArray(int depth)
            {
                var list = new List<object>();
                _i++;
                SkipWhitespace();
                if (Peek() == ']') { _i++; return list; }
                while (true)
                {
                    list.Add(ParseValue(depth + 1));
                    SkipWhitespace();
                    char c = Peek();
                    _i++;
                    if (c == ']') return list;
                    if (c != ',') throw new JsonException("expected ',' or ']' at " + (_i - 1));
                }
            }

            private string ParseString()
            {
                _i++; // opening quote
                var sb = new StringBuilder();
                while (true)
                {
                    if (AtEnd) throw new JsonException("unterminated string");
                    char c = _s[_i++];
                    if (c == '"') return sb.ToString();
                    if (c != '\\') { sb.Append(c); continue; }
                    if (AtEnd) throw new JsonException("unterminated escape");
                    char e = _s[_i++];
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            if (_i + 4 > _s.Length) throw new JsonException("bad \\u escape");
                            sb.Append((char)int.Parse(_s.Substring(_i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                            _i += 4;
                            break;
                        default: throw new JsonException("bad escape \\" + e);
                    }
                }
            }

            private object ParseNumber()
            {
                int start = _i;
                bool isFloat = false;
                while (_i < _s.Length)
                {
                    char c = _s[_i];
                    if (c == '.' || c == 'e' || c == 'E') isFloat = true;
                    else if (!(c == '-' || c == '+' || (c >= '0' && c <= '9'))) break;
                    _i++;
                }
                string token = _s.Substring(start, _i - start);
                long l;
                if (!isFloat && long.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out l))
                    return l;
                double d;
                if (double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out d)) return d;
                throw new JsonException("bad number '" + token + "'");
            }

            private void Expect(string word)
            {
                if (string.CompareOrdinal(_s, _i, word, 0, word.Length) != 0)
                    throw new JsonException("unexpected token at " + _i);
                _i += word.Length;
            }

            private char Peek()
            {
                if (AtEnd) throw new JsonException("unexpected end of JSON");
                return _s[_i];
            }
        }
    }
}
