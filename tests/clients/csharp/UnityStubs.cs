// A minimal stand-in for the UnityEngine/UnityEditor API members the Unity layer uses,
// signatures copied from Unity's scripting reference. It lets CI type-check
// clients/unity/Runtime/Unity and Editor with mcs; it is not Unity, and nothing runs.
using System;

namespace UnityEngine
{
    public class Object
    {
        public string name;
        public static T FindObjectOfType<T>() where T : Object { return null; }
        public static implicit operator bool(Object o) { return o != null; }
    }

    public class Component : Object
    {
        public GameObject gameObject { get { return null; } }
        public T GetComponent<T>() { return default(T); }
    }

    public class Behaviour : Component { public bool enabled; }
    public class MonoBehaviour : Behaviour { }
    public class ScriptableObject : Object { public static T CreateInstance<T>() where T : ScriptableObject { return null; } }

    public sealed class GameObject : Object
    {
        public GameObject(string name) { this.name = name; }
        public T AddComponent<T>() where T : Component { return null; }
    }

    public sealed class AudioSource : Behaviour
    {
        public AudioClip clip;
        public bool loop;
        public int timeSamples;
        public void Play() { }
        public void Stop() { }
    }

    public sealed class AudioClip : Object
    {
        public delegate void PCMReaderCallback(float[] data);
        public int samples { get { return 0; } }
        public int channels { get { return 1; } }
        public int frequency { get { return 16000; } }
        public bool GetData(float[] data, int offsetSamples) { return true; }
        public static AudioClip Create(string name, int lengthSamples, int channels, int frequency, bool stream, PCMReaderCallback pcmreadercallback) { return null; }
    }

    public sealed class AudioSettings
    {
        public static int outputSampleRate { get { return 48000; } }
        public static void GetDSPBufferSize(out int bufferLength, out int numBuffers) { bufferLength = 1024; numBuffers = 4; }
    }

    public sealed class Microphone
    {
        public static string[] devices { get { return new string[0]; } }
        public static AudioClip Start(string deviceName, bool loop, int lengthSec, int frequency) { return null; }
        public static void End(string deviceName) { }
        public static int GetPosition(string deviceName) { return 0; }
        public static void GetDeviceCaps(string deviceName, out int minFreq, out int maxFreq) { minFreq = maxFreq = 0; }
    }

    public sealed class Mesh : Object
    {
        public int blendShapeCount { get { return 0; } }
        public int GetBlendShapeIndex(string blendShapeName) { return -1; }
    }

    public class Renderer : Component { }
    public sealed class SkinnedMeshRenderer : Renderer
    {
        public Mesh sharedMesh;
        public void SetBlendShapeWeight(int index, float value) { }
    }

    public sealed class Time { public static float realtimeSinceStartup { get { return 0f; } } }
    [AttributeUsage(AttributeTargets.Class)] public sealed class CreateAssetMenuAttribute : Attribute { public string fileName; public string menuName; public int order; }

    public struct Mathf { public static int Clamp(int value, int min, int max) { return Math.Max(min, Math.Min(max, value)); } }

    public sealed class Debug
    {
        public static void LogWarning(object message, Object context) { }
        public static void LogError(object message, Object context) { }
    }

    public sealed class Application { public static bool isPlaying { get { return false; } } }

    public enum KeyCode { None = 0, Space = 32, T = 116 }

    public sealed class Input
    {
        public static bool GetKeyDown(KeyCode key) { return false; }
        public static bool GetKeyUp(KeyCode key) { return false; }
    }

    public struct Vector2 { public float x, y; }

    public struct Rect
    {
        public Rect(float x, float y, float width, float height) { }
        public bool Contains(Vector2 point) { return false; }
    }

    public sealed class Screen { public static int width { get { return 800; } } public static int height { get { return 600; } } }
    public sealed class GUILayoutOption { }
    public sealed class GUIStyle { }
    public sealed class GUISkin { public GUIStyle button { get { return null; } } }
    public sealed class GUIContent { public GUIContent(string text) { } }
    public enum EventType { MouseDown = 0, MouseUp = 1 }

    public sealed class Event
    {
        public static Event current { get { return null; } }
        public EventType type;
        public Vector2 mousePosition;
    }

    public sealed class GUI
    {
        public static GUISkin skin { get { return null; } }
        public static bool Button(Rect position, string text) { return false; }
    }

    public sealed class GUILayoutUtility
    {
        public static Rect GetRect(GUIContent content, GUIStyle style, params GUILayoutOption[] options) { return new Rect(); }
    }

    public sealed class GUILayout
    {
        public static bool Button(string text, params GUILayoutOption[] options) { return false; }
        public static void Label(string text, params GUILayoutOption[] options) { }
        public static string TextField(string text, params GUILayoutOption[] options) { return text; }
        public static void BeginArea(Rect screenRect) { }
        public static void EndArea() { }
        public static void BeginHorizontal(params GUILayoutOption[] options) { }
        public static void EndHorizontal() { }
        public static Vector2 BeginScrollView(Vector2 scrollPosition, params GUILayoutOption[] options) { return scrollPosition; }
        public static void EndScrollView() { }
        public static GUILayoutOption Width(float width) { return null; }
        public static GUILayoutOption ExpandWidth(bool expand) { return null; }
        public static GUILayoutOption ExpandHeight(bool expand) { return null; }
    }

    [AttributeUsage(AttributeTargets.Field)] public sealed class SerializeField : Attribute { }
    [AttributeUsage(AttributeTargets.Field, AllowMultiple = true)] public class PropertyAttribute : Attribute { }
    public sealed class HeaderAttribute : PropertyAttribute { public HeaderAttribute(string header) { } }
    public sealed class TooltipAttribute : PropertyAttribute { public TooltipAttribute(string tooltip) { } }
    public sealed class RangeAttribute : PropertyAttribute { public RangeAttribute(float min, float max) { } }
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true)] public sealed class RequireComponent : Attribute { public RequireComponent(Type requiredComponent) { } }
    [AttributeUsage(AttributeTargets.Class)] public sealed class DisallowMultipleComponent : Attribute { }
    [AttributeUsage(AttributeTargets.Class)] public sealed class AddComponentMenu : Attribute { public AddComponentMenu(string menuName) { } }
}

namespace UnityEngine.Events
{
    public abstract class UnityEventBase { }
    public class UnityEvent<T0> : UnityEventBase { public void Invoke(T0 arg0) { } public void AddListener(Action<T0> call) { } }
    public class UnityEvent<T0, T1> : UnityEventBase { public void Invoke(T0 arg0, T1 arg1) { } public void AddListener(Action<T0, T1> call) { } }
    public class UnityEvent<T0, T1, T2> : UnityEventBase { public void Invoke(T0 arg0, T1 arg1, T2 arg2) { } }
    public class UnityEvent<T0, T1, T2, T3> : UnityEventBase { public void Invoke(T0 arg0, T1 arg1, T2 arg2, T3 arg3) { } }
}

namespace UnityEditor
{
    using UnityEngine;

    public class Editor : ScriptableObject
    {
        public Object target;
        public bool DrawDefaultInspector() { return true; }
        public virtual void OnInspectorGUI() { }
        public void Repaint() { }
    }

    [AttributeUsage(AttributeTargets.Class)] public sealed class CustomEditor : Attribute { public CustomEditor(Type inspectedType) { } }
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = true)] public sealed class MenuItem : Attribute { public MenuItem(string itemName, bool isValidateFunction, int priority) { } }
    public sealed class MenuCommand { public Object context; }
    public enum MessageType { None, Info, Warning, Error }

    public sealed class EditorGUILayout
    {
        public static void HelpBox(string message, MessageType type) { }
        public static void Space() { }
        public static void LabelField(string label, string label2, params object[] options) { }
    }

    public sealed class EditorGUI
    {
        public struct DisabledScope : IDisposable
        {
            public DisabledScope(bool disabled) { }
            public void Dispose() { }
        }
    }

    public sealed class GameObjectUtility { public static void SetParentAndAlign(GameObject child, GameObject parent) { } }
    public sealed class Undo { public static void RegisterCreatedObjectUndo(Object objectToUndo, string name) { } }
    public sealed class Selection { public static Object activeObject; }
}
