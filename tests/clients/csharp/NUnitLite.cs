// The few NUnit pieces clients/unity/Tests use, so CI can run those edit-mode tests with
// Mono outside Unity. A runner finds every [Test] method and reports JSON lines.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;

namespace NUnit.Framework
{
    [AttributeUsage(AttributeTargets.Class)] public sealed class TestFixtureAttribute : Attribute { }
    [AttributeUsage(AttributeTargets.Method)] public sealed class TestAttribute : Attribute { }

    public delegate void TestDelegate();

    public sealed class AssertionException : Exception
    {
        public AssertionException(string message) : base(message) { }
    }

    public static class Assert
    {
        public static void AreEqual(object expected, object actual, string message = null)
        {
            if (!Equals(expected, actual) && !NumbersEqual(expected, actual))
                Fail("expected <" + expected + "> but was <" + actual + ">", message);
        }

        public static void AreEqual(double expected, double actual, double delta, string message = null)
        {
            if (Math.Abs(expected - actual) > delta) Fail("expected " + expected + " ± " + delta + " but was " + actual, message);
        }

        public static void IsTrue(bool condition, string message = null) { if (!condition) Fail("expected true", message); }
        public static void IsFalse(bool condition, string message = null) { if (condition) Fail("expected false", message); }
        public static void IsNull(object value, string message = null) { if (value != null) Fail("expected null but was <" + value + ">", message); }
        public static void IsNotNull(object value, string message = null) { if (value == null) Fail("expected a value", message); }

        public static T Throws<T>(TestDelegate code) where T : Exception
        {
            try { code(); }
            catch (T expected) { return expected; }
            catch (Exception other) { Fail("expected " + typeof(T).Name + " but got " + other.GetType().Name + ": " + other.Message, null); }
            Fail("expected " + typeof(T).Name + " but nothing was thrown", null);
            return null;
        }

        private static bool NumbersEqual(object a, object b)
        {
            if (a == null || b == null || !(a is IConvertible) || !(b is IConvertible) || a is string || b is string || a is bool || b is bool) return false;
            try { return Convert.ToDecimal(a) == Convert.ToDecimal(b); }
            catch (Exception) { return false; }
        }

        private static void Fail(string what, string message)
        {
            throw new AssertionException(message == null ? what : message + ": " + what);
        }
    }
}

internal static class NUnitLiteRunner
{
    private static int Main()
    {
        int failed = 0, passed = 0;
        var types = Assembly.GetExecutingAssembly().GetTypes()
            .Where(t => t.GetCustomAttributes(typeof(NUnit.Framework.TestFixtureAttribute), false).Length > 0);
        foreach (Type type in types.OrderBy(t => t.FullName))
            foreach (MethodInfo method in type.GetMethods().Where(m => m.GetCustomAttributes(typeof(NUnit.Framework.TestAttribute), false).Length > 0))
            {
                string name = type.Name + "." + method.Name;
                try
                {
                    method.Invoke(Activator.CreateInstance(type), null);
                    passed++;
                    Console.WriteLine(Personae.Json.Serialize(new Dictionary<string, object> { { "test", name }, { "outcome", "passed" } }));
                }
                catch (TargetInvocationException exc)
                {
                    failed++;
                    Console.WriteLine(Personae.Json.Serialize(new Dictionary<string, object>
                    {
                        { "test", name }, { "outcome", "failed" }, { "message", exc.InnerException.GetType().Name + ": " + exc.InnerException.Message },
                    }));
                }
            }
        Console.WriteLine(Personae.Json.Serialize(new Dictionary<string, object> { { "passed", passed }, { "failed", failed } }));
        return failed == 0 && passed > 0 ? 0 : 1;
    }
}
