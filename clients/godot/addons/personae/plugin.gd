@tool
extends EditorPlugin
## Enabling the addon prepares the project for voice: audio input on (the microphone
## needs it) and a "personae_talk" input action on Tab for push-to-talk. The nodes
## themselves (PersonaeClient, PersonaeVoice, PersonaeMicrophone) register through
## their class_name and appear in "Add Child Node".

const TALK_ACTION := "input/personae_talk"


func _enable_plugin() -> void:
	var changed := false
	if not ProjectSettings.get_setting("audio/driver/enable_input", false):
		ProjectSettings.set_setting("audio/driver/enable_input", true)
		changed = true
	if not ProjectSettings.has_setting(TALK_ACTION):
		var key := InputEventKey.new()
		key.physical_keycode = KEY_TAB
		ProjectSettings.set_setting(TALK_ACTION, {"deadzone": 0.5, "events": [key]})
		changed = true
	if changed:
		ProjectSettings.save()
