using System;

namespace Personae
{
    /// <summary>Stable codes for errors the client reports; daemon errors keep the daemon's code.</summary>
    public static class ErrorCodes
    {
        /// <summary>The daemon could not be reached (refused, DNS, TLS, handshake timeout).</summary>
        public const string ConnectFailed = "connect_failed";
        /// <summary>An open connection dropped (daemon closed mid-reply, network gone).</summary>
        public const string ConnectionLost = "connection_lost";
        /// <summary>Send while not connected (e.g. during a reconnect); the event was dropped.</summary>
        public const string NotConnected = "not_connected";
        /// <summary>A frame that is not valid JSON or msgpack.</summary>
        public const string MalformedFrame = "malformed_frame";
        /// <summary>A frame that decodes but is not an event.</summary>
        public const string InvalidEvent = "invalid_event";
        /// <summary>One of the client's own callbacks threw; the client carries on.</summary>
        public const string CallbackFailed = "callback_failed";
    }

    /// <summary>
    /// Every failure the client reports, thrown from async calls and passed to the
    /// Error callback. <see cref="Server"/> is set when the daemon sent an `error` event.
    /// </summary>
    public sealed class PersonaeException : Exception
    {
        public readonly string Code;
        public readonly bool Retryable;
        public readonly ErrorInfo Server;

        public PersonaeException(string code, string message, Exception inner = null, bool retryable = false)
            : base(message, inner)
        {
            Code = code;
            Retryable = retryable;
        }

        public PersonaeException(ErrorInfo server)
            : base(server.Code + ": " + server.Message)
        {
            Code = server.Code;
            Retryable = server.Retryable;
            Server = server;
        }
    }
}
