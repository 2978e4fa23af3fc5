"""Every participant-facing string of the browser task, translated in the active language.

The task page hands this dict to static/task/task.js as JSON. Placeholders are
written `{name}` and filled in by the script (never with Python's `%`), so a
translation may move them but must keep each one.
"""

from django.utils.translation import gettext as _


def task_strings() -> dict[str, str]:
    """The task's UI strings, keyed by the names task.js uses."""
    return {
        # Page frame and connection state
        "loading": _("Loading…"),
        "progress_label": _("Your progress"),
        "saving": _("Saving…"),
        "offline": _(
            "Offline: your answers are kept and will be sent when the connection returns."
        ),
        "connecting": _("Connecting to the server…"),
        "error_saving": _(
            "Something went wrong while saving your answers. "
            "Please reload the page: your progress is kept."
        ),
        "error_not_found": _("This link is not valid. Please check the link you were given."),
        "error_loading": _("The task could not be loaded. Please reload the page."),
        "reload": _("Reload the page"),
        "state_changed": _("This session was updated in another window. Loading the latest state…"),
        "session_closed": _(
            "This session is closed. If you think this is a mistake, "
            "please contact the research team."
        ),
        # Buttons
        "continue": _("Continue"),
        "next": _("Next"),
        "back": _("Back"),
        "start": _("Start"),
        # Instructions
        "instructions_heading_1": _("What this task is about"),
        "instructions_1_a": _(
            "In this task you will read short descriptions of events that can happen in a "
            "person's life, for example “Losing your keys”."
        ),
        "instructions_1_b": _(
            "For each event, you will estimate how likely it is to happen to you at some point "
            "in your life. You answer with a whole number between {min} and {max} percent."
        ),
        "instructions_heading_2": _("The average probability"),
        "instructions_2_a": _(
            "After your estimate, you will see the average probability of the event for "
            "someone like you: a person of your age and sex living in your country."
        ),
        "instructions_2_b": _(
            "Please read it carefully. The Continue button becomes available after a few seconds."
        ),
        "instructions_ebr": _(
            "You will also be asked how likely you think the event is for an average person "
            "of your age and sex living in your country."
        ),
        "instructions_confidence": _(
            "You will also be asked how much you trust the average probability you were shown."
        ),
        "instructions_heading_3": _("Later in the task"),
        "instructions_3_a": _(
            "Later, you will see every event again and give your estimate once more. You may "
            "keep your first answer or change it: it is up to you."
        ),
        "instructions_memory": _(
            "Near the end, you will be asked to recall the average probabilities you saw."
        ),
        "instructions_ratings": _(
            "At the end, you will rate each event on a few short scales from 1 to 6."
        ),
        "instructions_3_b": _(
            "There are no right or wrong answers. We are interested in your own view."
        ),
        "instructions_3_c": _(
            "Your answers are saved as you go. If your connection drops, nothing is lost: your "
            "answers are kept on this device and sent when it returns. You can carry on "
            "answering offline, except after a first estimate: the average probability comes "
            "from the server, so the task waits there for the connection and then continues "
            "by itself."
        ),
        "instructions_heading_4": _("A few questions before you start"),
        "instructions_4_a": _(
            "To check that the instructions are clear, please answer three short questions "
            "on the next screen."
        ),
        # Comprehension quiz
        "quiz_heading": _("Questions about the instructions"),
        "quiz_question": _("Question {n}"),
        "quiz_1": _("What will you estimate for each event?"),
        "quiz_1_right": _("How likely it is to happen to me at some point in my life"),
        "quiz_1_wrong_a": _("How much I would dislike it if it happened"),
        "quiz_1_wrong_b": _("How often it has happened to people I know"),
        "quiz_2": _("What will you see after your first estimate for an event?"),
        "quiz_2_right": _("The average probability of the event for someone like me"),
        "quiz_2_wrong_a": _("Whether my estimate was right or wrong"),
        "quiz_2_wrong_b": _("The answers of other participants"),
        "quiz_3": _("Are there right or wrong answers?"),
        "quiz_3_right": _("No: I give my own best estimate"),
        "quiz_3_wrong_a": _("Yes: I must find the exact figure"),
        "quiz_3_wrong_b": _("Yes: I should give the same answer for every event"),
        "quiz_submit": _("Check my answers"),
        "quiz_feedback_heading": _("Not quite yet"),
        "quiz_feedback_intro": _("These questions were not answered correctly:"),
        "quiz_feedback_item": _("Question {n}: {question}"),
        "quiz_feedback_retry": _(
            "Please read the instructions again, then answer the questions once more."
        ),
        "quiz_retry": _("Read the instructions again"),
        # Block introductions
        "welcome_back_heading": _("Welcome back"),
        "welcome_back": _("You can continue where you left off."),
        "practice_heading": _("Practice"),
        "practice_intro": _(
            "First, a short practice helps you get used to the task. Practice answers are "
            "not used in the results."
        ),
        "practice_badge": _("Practice"),
        "block1_heading": _("Part 1"),
        "block1_intro": _(
            "The task now begins. For each event, estimate how likely it is to happen to you, "
            "then read the average probability for someone like you."
        ),
        "block2_heading": _("Part 2"),
        "block2_intro": _(
            "You will now see each event again. Please estimate once more how likely it is to "
            "happen to you. The average probability is not shown this time."
        ),
        "memory_heading": _("Remembering the figures"),
        "memory_intro": _(
            "For each event, please recall the average probability you were shown in part 1. "
            "If you are not sure, give your best guess."
        ),
        "ratings_heading": _("About the events"),
        "ratings_intro": _("Finally, please rate each event on a few short scales from 1 to 6."),
        # Questionnaires (their questions and answers come from the instrument's file)
        "questionnaire_heading": _("A few questions"),
        "questionnaire_intro": _(
            "Please answer each question. There are no right or wrong answers."
        ),
        "item_counter": _("Question {n} of {count}"),
        "item_skip": _("Skip this question"),
        "item_choose_error": _("Please choose an answer."),
        "item_number_hint": _("A whole number from {min} to {max}."),
        "item_number_error": _("Please enter a whole number from {min} to {max}."),
        # Estimate screens
        "prompt_e": _("How likely is this to happen to you at some point in your life?"),
        "prompt_ebr": _(
            "How likely is this for an average person of your age and sex living in your country?"
        ),
        "subject_self": _("About you"),
        "subject_other": _("About an average person"),
        "prompt_memory": _("What was the average probability shown for this event?"),
        "range_hint": _("Please enter a whole number between {min} and {max}%."),
        "range_error": _("Please enter a whole number between {min} and {max}."),
        # Base-rate screen
        "br_sentence": _("The average probability for someone like you is {br}%."),
        "br_waiting": _("Saving your answer…"),
        "br_offline_title": _("Waiting for the connection"),
        "br_offline_why": _(
            "The average probability for this event comes from the server, which needs your "
            "connection."
        ),
        "br_offline_safe": _("Your answers are kept on this device: nothing is lost."),
        "br_offline_resume": _(
            "The task continues by itself as soon as you are back online: you do not need to "
            "do anything."
        ),
        # Confidence and ratings (1 to 6)
        "rating_hint": _("Choose a number from 1 to 6, then continue."),
        "confidence_prompt": _("How much do you trust the figure you were just shown?"),
        "confidence_low": _("Not at all"),
        "confidence_high": _("Completely"),
        "vividness_prompt": _("How vividly can you imagine this event happening to you?"),
        "vividness_low": _("Not vividly at all"),
        "vividness_high": _("Very vividly"),
        "familiarity_prompt": _(
            "How familiar is this event to you, from what you have seen, heard or read?"
        ),
        "familiarity_low": _("Not familiar at all"),
        "familiarity_high": _("Very familiar"),
        "experience_prompt": _("Has this event, or something like it, happened to you before?"),
        "experience_low": _("Never"),
        "experience_high": _("Many times"),
        "arousal_prompt": _("How strongly does this event make you feel something?"),
        "arousal_low": _("Not at all"),
        "arousal_high": _("Very strongly"),
        "negativity_prompt": _("How negative would this event be for you?"),
        "negativity_low": _("Not negative at all"),
        "negativity_high": _("Extremely negative"),
        # Debrief and the end
        "debrief_heading": _("About this study"),
        "debrief_default": _(
            "Thank you for taking part. Some of the average probabilities you saw were set for "
            "the purposes of this study and may not match the real figures. The study looks at "
            "how people change their beliefs when they receive new information. If you have any "
            "questions, please contact the research team."
        ),
        "saving_final": _("Saving your answers…"),
        "saving_final_note": _("Please keep this page open."),
        "completion_heading": _("Thank you!"),
        "session_complete": _("This session is complete."),
        "completion_code": _("Your completion code is {code}"),
        "completion_code_help": _(
            "Please copy this code and paste it where you were asked for it."
        ),
        "copy_code": _("Copy the code"),
        "copied": _("Copied"),
        "completion_close": _("You can now close this page."),
        "redirecting": _("Redirecting…"),
        "redirect_link": _("Continue to the next page"),
        **visit_strings(),
    }


def visit_strings() -> dict[str, str]:
    """The next visit's sentences, for the completion screen and the return link's pages.

    static/task/when.js writes the times in the browser's zone and the participant's
    language; `{relative}` is "in 4 hours", `{opens}` / `{closes}` a moment such as
    "14:05 today" built from `moment_day` ({day}: today, tomorrow) or `moment_date`.
    """
    return {
        "next_opens_closes": _("Your next session opens {relative}, from {opens} until {closes}."),
        "next_opens": _("Your next session opens {relative}, from {opens}. It then stays open."),
        "next_open_closes": _("Your next session is open now, until {closes}."),
        "next_open": _("Your next session is open now."),
        "next_waiting_anchor": _(
            "The research team will set the time of your next session and tell you when it opens."
        ),
        "next_zone": _("Times are in your time zone ({zone})."),
        "moment_day": _("{time} {day}"),
        "moment_date": _("{time} on {date}"),
        "copied": _("Copied"),
    }
