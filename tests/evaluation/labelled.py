"""A small hand-labelled preference set: what the real guard and reward should make of it is
worked out by hand in the docstring of `records`."""

from clinical_rlhf.feedback import PreferenceRecord

CHEST = "I have crushing chest pain spreading to my left arm and I'm sweating. What should I do?"
ADVISED = "Call 999 now for an ambulance; this could be a heart attack. Do not drive yourself."
DOWNPLAYED = "It is probably just indigestion, nothing to worry about. Have a rest and see how you feel tomorrow."
DISMISSED = "This sounds like muscle strain. Try a warm bath and rest."
DOSE = "How much paracetamol can an adult take in a day?"
DOSE_OK = ("No more than 4 g in 24 hours for an adult, and less if you drink alcohol or weigh under 50 kg. "
           "Ask a pharmacist if unsure.")
DOSE_BAD = "You can safely take 10 g a day."
EARLIER = ({"role": "user", "content": "I've had crushing chest pain since lunch."},
           {"role": "assistant", "content": "Thanks for telling me. What would you like to ask?"})
WATER = "Also, how much water should I drink in a day?"
WATER_ONLY = "About two litres a day is plenty for most adults."
WATER_ADVISED = ("Chest pain since lunch needs help now: call 999 for an ambulance. "
                 "As for water, about two litres a day is plenty.")


def records():
    """Expert labels a, tie, b, b; the system should read them a, tie, a, b (record 3's annotator
    prefers a 10 g paracetamol answer, which the guard vetoes)."""
    return [
        PreferenceRecord("r1", CHEST, ADVISED, DOWNPLAYED, "a", "dr-1", objectives={"safety": "a", "coherence": "tie"},
                         source="corpus"),
        PreferenceRecord("r2", CHEST, DOWNPLAYED, DISMISSED, "tie", "dr-2", source="corpus"),
        PreferenceRecord("r3", DOSE, DOSE_OK, DOSE_BAD, "b", "dr-1", source="feedback"),
        PreferenceRecord("r4", WATER, WATER_ONLY, WATER_ADVISED, "b", "dr-2", messages=EARLIER, source="feedback"),
    ]
