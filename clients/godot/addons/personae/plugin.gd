@tool
extends EditorPlugin
## Registers the personae nodes so they appear in "Add Child Node".


func _enter_tree() -> void:
	var base := "res://addons/personae/"
	add_custom_type("PersonaeClient", "Node", load(base + "personae_client.gd"), null)
	add_custom_type("PersonaeVoice", "AudioStreamPlayer", load(base + "personae_voice.gd"), null)
	add_custom_type("PersonaeMicrophone", "Node", load(base + "personae_microphone.gd"), null)


func _exit_tree() -> void:
	remove_custom_type("PersonaeMicrophone")
	remove_custom_type("PersonaeVoice")
	remove_custom_type("PersonaeClient")
