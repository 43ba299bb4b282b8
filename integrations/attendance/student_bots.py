"""Which student bot a session's students use, for the teacher's "session open" message.

With several student bots (``STUDENT_BOT_TOKENS``, see :mod:`integrations.telegram.bots`), each
batch of a session is given one bot, so its students share that bot's send budget with as few
others as possible; the teacher tells the class which bot to write to. :class:`StudentBots` is
that directory: :func:`~integrations.app.assembly.build_app` makes it from the settings (the bots'
names and numeric ids, no secret), the ``run`` command gives it the bots' @usernames once they are
connected (:meth:`StudentBots.set_usernames`), and the ``open_session`` hook asks it
(:meth:`StudentBots.describe`). With one student bot there is nothing to tell: the text is empty.
"""
from __future__ import annotations

import logging
from typing import Mapping, Optional, Sequence, Union

from integrations.settings import Settings
from integrations.telegram.bots import describe_student_bots, student_bot_for_batches
from integrations.telegram.config import student_bot_ids
from integrations.telegram.constants import STUDENT_BOT

log = logging.getLogger(__name__)


class StudentBots:
    """The student bots of this instance, by Telegram bot name (``student``, ``student-2``...).

    ``bots`` maps each name to its numeric bot id (the stable identity batches are spread by:
    it survives a restart, a token revocation and a rename) or ``None`` when unknown (then the
    name is used). Usernames are unknown until :meth:`set_usernames`.
    """

    def __init__(self, bots: Union[Mapping[str, Optional[int]], Sequence[str]] = (STUDENT_BOT,),
                 usernames: Optional[Mapping[str, str]] = None) -> None:
        pairs = bots.items() if isinstance(bots, Mapping) else ((name, None) for name in bots)
        self._identity: dict[str, Union[int, str]] = {name: (bot if bot is not None else name) for name, bot in pairs}
        if not self._identity:
            self._identity = {STUDENT_BOT: STUDENT_BOT}
        self._name_of = {identity: name for name, identity in self._identity.items()}
        self._usernames: dict[str, str] = {}
        if usernames:
            self.set_usernames(usernames)

    @classmethod
    def from_settings(cls, settings: Settings) -> "StudentBots":
        """The bots ``STUDENT_BOT_TOKEN`` and ``STUDENT_BOT_TOKENS`` configure (one ``student`` if none)."""
        return cls(student_bot_ids(settings) or (STUDENT_BOT,))

    @property
    def names(self) -> list[str]:
        return list(self._identity)

    @property
    def several(self) -> bool:
        return len(self._identity) > 1

    def set_usernames(self, usernames: Mapping[str, str]) -> None:
        """Telegram bot name -> @username, as the runtime knows them once connected; other bots ignored."""
        for name, username in usernames.items():
            if name in self._identity and username:
                self._usernames[name] = username.lstrip("@")
        log.info("student bots: %s", ", ".join(f"{n} = @{self._usernames.get(n, '?')}" for n in self._identity))

    def username(self, name: str) -> Optional[str]:
        return self._usernames.get(name)

    def assign(self, batches: Sequence[str], sizes: Optional[Mapping[str, int]] = None) -> dict[str, str]:
        """Batch -> the name of the student bot its students should use (stable; balanced by size)."""
        if not batches:
            return {}
        chosen = student_bot_for_batches(list(batches), list(self._identity.values()), sizes=sizes)
        return {batch: self._name_of[identity] for batch, identity in chosen.items()}

    def describe(self, batches: Sequence[str], sizes: Optional[Mapping[str, int]] = None) -> str:
        """The line for the teacher, e.g. ``Students check in with: A → @x_bot; B → @y_bot``.

        Empty with one student bot (the message says "the student bot" already), with no batch,
        or while a bot's username is not known yet (naming no bot beats naming a wrong one).
        """
        if not self.several or not batches:
            return ""
        assignment = self.assign(batches, sizes)
        if any(name not in self._usernames for name in assignment.values()):
            log.warning("student bot usernames not known yet; the session message names no bot")
            return ""
        return describe_student_bots(assignment, self._usernames)
