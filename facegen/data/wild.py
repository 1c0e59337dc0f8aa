"""In-the-wild expression data: LFW photos labelled by ``lfw_expressions`` (labels.csv).

Same-person, different-photo pairs (neutral -> an expression) for training, and the neutral faces
of held-out identities for the wild protocols (``smile-wild``, ``expression-wild``).

The held-out identities, :data:`LFW_TEST_IDENTITIES`, are listed here by name so the split never
moves with file order or library versions. They were chosen once by a rule: every LFW identity
with at least one neutral and one happy photo and at most 40 neutral photos, whose name's SHA-256
(UTF-8, as an integer) is divisible by 5; 159 of the 791 identities with both labels, 570 neutral
and 446 happy photos. The few identities with hundreds of photos (e.g. George_W_Bush) stay in
training. Smile and expression models never train on these people. The in-domain expression judge
(facegen.data.splits, ``judge``) trains on every ``lfw_expressions`` photo, these people's
included: it has seen the real photos, never the models' outputs.

Training pairs pair every neutral photo of a training identity with every target photo of it and
keep at most ``per_identity`` of those combinations, spread evenly over them (a few people have
thousands), so the pairs cover about 630 people rather than a handful.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from facegen.data.pairs import ExpressionPair
from facegen.data.records import FaceRecord
from facegen.data.sets import read_lfw_expressions
from facegen.expressions import normalise_expression

LFW_TEST_IDENTITIES: tuple[str, ...] = (
    'Abdoulaye_Wade', 'Al_Pacino', 'Alberto_Fujimori', 'Alexandra_Vodjanikova',
    'Alvaro_Silva_Calderon', 'Amber_Tamblyn', 'Amelie_Mauresmo', 'Ana_Guevara', 'Antony_Leung',
    'Anwar_Ibrahim', 'Ben_Howland', 'Bertie_Ahern', 'Bill_Graham', 'Bill_McBride', 'Billy_Crystal',
    'Bob_Hope', 'Brian_Wells', 'Carol_Moseley_Braun', 'Caroline_Kennedy', 'Celine_Dion',
    'Chanda_Rubin', 'Charles_Taylor', 'Chok_Tong_Goh', 'Christopher_Walken', 'Chuck_Amato',
    'Condoleezza_Rice', 'Darrell_Issa', 'Darrell_Porter', 'David_Coulthard', 'Denise_Johnson',
    'Dennis_Hastert', 'Don_Nickles', 'Donald_Evans', 'Donald_Fehr', 'Dorthy_Moxley', 'Doug_Melvin',
    'Drew_Barrymore', 'Edward_James_Olmos', 'Edward_Said', 'Elena_Bovina', 'Elizabeth_Hurley',
    'Emmanuelle_Beart', 'Eunice_Barber', 'Franco_Dragone', 'Frank_Griswold', 'Franz_Beckenbauer',
    'Gabriel_Batistuta', 'George_HW_Bush', 'George_Papandreou', 'George_Voinovich', 'Gloria_Trevi',
    'Gonzalo_Sanchez_de_Lozada', 'Greg_Rusedski', 'Guillermo_Coria', 'Gunter_Pleuger',
    'Gwendal_Peizerat', 'Hamid_Karzai', 'Harbhajan_Singh', 'Harry_Kalas', 'Harvey_Weinstein',
    'Hector_Babenco', 'Iain_Duncan_Smith', 'Ian_Thorpe', 'James_Kopp', 'Jan_Ullrich',
    'Janet_Napolitano', 'Jason_Kidd', 'Jeffrey_Archer', 'Jeffrey_Immelt', 'Jennifer_Lopez',
    'Jiang_Zemin', 'Jim_Furyk', 'Jim_Hahn', 'Jim_Tressel', 'Joan_Laporta', 'Joe_Calzaghe',
    'John_Bolton', 'John_Howard', 'John_Manley', 'John_McCain', 'John_Negroponte', 'John_Rowland',
    'Johnny_Tapia', 'Juan_Carlos_Ferrero', 'Juan_Ignacio_Chela', 'Kevin_Costner', 'Kim_Jong-Il',
    'King_Abdullah_II', 'Kofi_Annan', 'Kosuke_Kitajima', 'Kurt_Busch', 'Kurt_Warner',
    'Lance_Armstrong', 'Lance_Bass', 'Larry_Bowa', 'Laura_Hernandez', 'Lauren_Killian',
    'Lleyton_Hewitt', 'Marco_Antonio_Barrera', 'Maria_Soledad_Alvear_Valenzuela', 'Martina_Hingis',
    'Matthew_Perry', 'Michael_Chang', 'Michael_Chiklis', 'Michael_Sullivan', 'Mike_Tyson',
    'Mike_Weir', 'Mikhail_Gorbachev', 'Monica_Bellucci', 'Naji_Sabri', 'Naoto_Kan', 'Nick_Nolte',
    'Nicole_Kidman', 'Noelle_Bush', 'Oscar_De_La_Hoya', 'Paul_Gascoigne', 'Paul_Kagame',
    'Pedro_Malan', 'Pervez_Musharraf', 'Pierce_Brosnan', 'Prince_Willem-Alexander',
    'Princess_Caroline', 'Princess_Elisabeth', 'Priscilla_Owen', 'Rebekah_Chantay_Revels',
    'Recep_Tayyip_Erdogan', 'Reese_Witherspoon', 'Ricardo_Lopez_Murphy', 'Richard_Gere',
    'Rick_Wagoner', 'Robbie_Williams', 'Robert_Blake', 'Robert_Bonner', 'Roberto_Marinho',
    'Roger_Federer', 'Roman_Polanski', 'Ronaldo_Luis_Nazario_de_Lima', 'Roy_Jones_Jr', 'Roy_Moore',
    'Rupert_Murdoch', 'Russell_Crowe', 'Scott_McClellan', 'Sepp_Blatter', 'Shaul_Mofaz',
    'Silvio_Berlusconi', 'Steffi_Graf', 'Steve_Park', 'Thomas_OBrien', 'Tom_Craddick',
    'Tung_Chee-hwa', 'Valery_Giscard_dEstaing', 'Vicente_Fernandez', 'Vicente_Fox',
    'Vladimir_Putin', 'William_Rehnquist', 'Wu_Yi', 'Yao_Ming', 'Yoko_Ono', 'Zoran_Djindjic',
)

#: Neutral test faces per identity in the wild protocols (first ones in label order).
TEST_FACES_PER_IDENTITY = 3  # 301 faces: at least the 300 the wild protocols ask for
#: Default cap on the neutral -> target combinations kept per training identity.
PAIRS_PER_IDENTITY = 20


def _by_identity(root: str | Path | None) -> dict[str, dict[str, list[FaceRecord]]]:
    """identity -> expression -> LFW photos (label order); the ``other_images`` crops are left out
    (most carry no person's name)."""
    out: dict[str, dict[str, list[FaceRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in read_lfw_expressions(root, include_other=False):
        out[r.subject][r.expression].append(r)
    return out


def wild_test_faces(expression: str = "neutral", root: str | Path | None = None,
                    per_identity: int | None = TEST_FACES_PER_IDENTITY) -> list[FaceRecord]:
    """Photos of the held-out identities labelled ``expression``: the first ``per_identity`` of
    each (None: all), identities in :data:`LFW_TEST_IDENTITIES` order."""
    expression = normalise_expression(expression)
    groups = _by_identity(root)
    out: list[FaceRecord] = []
    for name in LFW_TEST_IDENTITIES:
        photos = groups.get(name, {}).get(expression, [])
        out += photos if per_identity is None else photos[:per_identity]
    return out


def wild_train_pairs(expression: str, root: str | Path | None = None,
                     per_identity: int = PAIRS_PER_IDENTITY) -> list[ExpressionPair]:
    """Neutral -> ``expression`` pairs of different photos of one training identity (never a
    held-out one): all combinations of a person's neutral and target photos, at most
    ``per_identity`` of them taken at evenly spaced positions, identities in name order."""
    if per_identity < 1:
        raise ValueError(f"per_identity must be at least 1; got {per_identity}")
    expression = normalise_expression(expression)
    if expression == "neutral":
        raise ValueError("the target expression of a pair cannot be neutral")
    held_out = set(LFW_TEST_IDENTITIES)
    pairs: list[ExpressionPair] = []
    for name, photos in sorted(_by_identity(root).items()):
        neutral, target = photos.get("neutral", []), photos.get(expression, [])
        if name in held_out or not neutral or not target:
            continue
        n = len(neutral) * len(target)
        keep = range(n) if n <= per_identity else (i * n // per_identity for i in range(per_identity))
        a = len(neutral)  # combination k = (neutral photo k mod a, target photo k div a)
        pairs += [ExpressionPair(subject=name, neutral=neutral[k % a], target=target[k // a]) for k in keep]
    return pairs
