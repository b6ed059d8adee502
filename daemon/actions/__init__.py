"""What characters do for the game: actions, triggers and goals.

declarations ─ the character file's `[[actions]]`, `[[triggers]]`, `[[goals]]`
schema       ─ the JSON Schema subset parameters are declared in, and its validator
arguments    ─ arguments taken from the player's words, never invented
matching     ─ a player line to an action or a goal's intent (MiniLM, threshold + margin)
goals        ─ which goals fired for which player (the store's `goal_runs`)
planner      ─ one turn's plan: the `npc.action` events, the reply's note or line
"""

from personae.daemon.actions.declarations import ActionSpec, GoalSpec, TriggerSpec

__all__ = ["ActionSpec", "GoalSpec", "TriggerSpec"]
