"""The console's themes: Textual Theme objects registered with ``App.register_theme``."""

from textual.theme import Theme

from .dark import THEME as DARK
from .high_contrast import THEME as HIGH_CONTRAST
from .light import THEME as LIGHT

THEMES: dict[str, Theme] = {t.name: t for t in (DARK, LIGHT, HIGH_CONTRAST)}
DEFAULT_THEME = DARK.name
