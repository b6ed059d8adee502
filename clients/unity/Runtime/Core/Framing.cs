// The two framings of protocol events: JSON text frames (audio as base64) and msgpack
// binary frames (raw audio bytes). The daemon answers in the framing last spoken to it.
using System;
using System.Collections.Generic;
using System.Text;

namespace Personae
{
    public enum Framing { MsgPack, Json }

    public static class Frames
    {
        public static byte[] Encode(ClientEvent e, Framing framing)
        {
            Dictionary<string, object> map = e.ToMap();
            return framing == Framing.MsgPack
                ? MsgPack.Serialize(map)
                : Encoding.UTF8.GetBytes(Json.Serialize(map));
        }

        /// <summary>One received frame as an event; bad frames raise PersonaeException.</summary>
        public static ServerEvent Decode(byte[] data, int count, bool binary, FieldAudit audit = null)
        {
            object value;
            try
            {
                value = binary
                    ? MsgPack.Deserialize(data, 0, count)
                    : Json.Deserialize(Encoding.UTF8.GetString(data, 0, count));
            }
            catch (MsgPackException exc)
            {
                throw new PersonaeException(ErrorCodes.MalformedFrame, "binary frame is not valid msgpack: " + exc.Message, exc);
            }
            catch (JsonException exc)
            {
                throw new PersonaeException(ErrorCodes.MalformedFrame, "text frame is not valid JSON: " + exc.Message, exc);
            }
            catch (ArgumentException exc)
            {
                throw new PersonaeException(ErrorCodes.MalformedFrame, "frame is not valid UTF-8: " + exc.Message, exc);
            }
            var map = value as IDictionary<string, object>;
            if (map == null) throw new PersonaeException(ErrorCodes.InvalidEvent, "a frame must hold one event object (a map)");
            return ServerEvents.FromMap(map, audit);
        }
    }
}
