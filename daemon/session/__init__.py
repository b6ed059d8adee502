"""A realtime conversation, stage by stage.

session.py       the task group, the client's events and their dispatch, the history
transport.py     frames in (size, decoding, rate) and events out (spelling, slow clients)
scene.py         the scene's characters, as the key may use them
session_update.py  `session.update` checked and applied
items.py         `conversation.item.create` checked; truncation.py: item.truncate
turns.py         the queue of turns, each routed to a character and replied to
listener.py      VAD or push-to-talk, endpointing, transcription of a turn
endpointing.py   where a turn ends; incremental.py: its text, piece by piece
reply.py         a character's reply: LLM to sentences (splitter.py) to TTS
priming.py       prefilling the speaker's next prompt after a reply
outbox.py        paced, bounded sending; control events overtake audio
conversation.py  a turn prepared and recorded (shared with the OpenAI API)
prompt.py        the messages a character answers from
reporting.py     errors mapped to `error` events
openai_session.py  OpenAI Realtime clients: `model=`, dialect, event spellings
openai_reply.py  OpenAI's events around a reply (output item, content part, usage)
"""
