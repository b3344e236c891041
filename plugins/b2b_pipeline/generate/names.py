"""Names of companies and people, Cyrillic (the majority) and Latin, with their ids and contacts.

Everything here is a pure function of a `random.Random` and, where a value must
be unique across the whole drop (tax ids, domains), of the account index.
"""

from __future__ import annotations

import random

# ---------------------------------------------------------------- companies
_RU_WORDS = (
    "Ромашка", "Вектор", "Меридиан", "Горизонт", "Радуга", "Атлант", "Орбита", "Созвездие",
    "Садко", "Берёзка", "Кристалл", "Магистраль", "Навигатор", "Континент", "Полюс", "Рубин",
    "Сфера", "Феникс", "Прогресс", "Эталон", "Янтарь", "Аврора", "Байкал", "Волна",
)  # fmt: skip
_RU_PREFIX = (
    "Техно", "Строй", "Агро", "Сибирь", "Урал", "Север", "Волга", "Балт", "Росс", "Мега",
    "Инвест", "Энерго", "Промо", "Глобал", "Нефте", "Транс", "Мед", "Фарм", "Софт", "Дата",
    "Капитал", "Альфа", "Дон", "Кубань", "Тех", "Эко", "Гидро", "Хим",
)  # fmt: skip
_RU_SUFFIX = (
    "Сервис", "Групп", "Трейд", "Пром", "Логистик", "Снаб", "Систем", "Маркет", "Инжиниринг",
    "Холдинг", "Консалт", "Лайн", "Плюс", "Ресурс", "Монтаж", "Комплект", "Экспорт", "Лаб",
)  # fmt: skip
_RU_ADJ = ("Северный", "Первый", "Новый", "Южный", "Западный", "Восточный", "Большой", "Сибирский")
_RU_NOUN = ("Ветер", "Путь", "Берег", "Мост", "Город", "Край", "Порт", "Век")
_RU_FORMS = (("ООО", 70), ("АО", 14), ("ПАО", 3), ("ЗАО", 4), ("ГК", 4), ("ИП", 5))

_EN_WORDS = (
    "Northwind", "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay",
    "Soylent", "Tyrell", "Cyberdyne", "Oscorp", "Wonka", "Gringotts", "Monarch", "Pied Piper",
    "Blue Harbor", "Silver Lake", "Red Rock", "Green Field", "Bright Path", "Nordic", "Atlas",
)  # fmt: skip
_EN_KIND = (
    "Trading", "Analytics", "Logistics", "Systems", "Foods", "Industries", "Energy", "Software",
    "Consulting", "Retail", "Labs", "Partners", "Holdings", "Solutions",
)  # fmt: skip
_EN_FORMS = ("LLC", "Ltd", "Ltd.", "GmbH", "Inc.", "B.V.", "LLP", "AG", "S.A.")

INDUSTRIES_RU = (
    "Производство", "Розничная торговля", "Оптовая торговля", "Логистика", "IT", "Финансы",
    "Строительство", "Медицина", "Образование", "Энергетика", "Телеком", "Агропром", "HoReCa",
    "Госсектор", "Нефть и газ", "Фармацевтика",
)  # fmt: skip
INDUSTRIES_EN = (
    "Manufacturing", "Retail", "Logistics", "Software", "Financial Services", "Construction",
    "Healthcare", "Education", "Energy", "Telecommunications", "Food & Beverage",
)  # fmt: skip


def _pick_weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    total = sum(w for _, w in pairs)
    x = rng.randrange(total)
    for value, w in pairs:
        if x < w:
            return value
        x -= w
    return pairs[-1][0]


def _quote(rng: random.Random, body: str) -> str:
    r = rng.random()
    if r < 0.8:
        return f"«{body}»"
    if r < 0.95:
        return f'"{body}"'  # straight quotes: the CSV writer must escape them
    return body


def ru_company_body(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.3:
        return rng.choice(_RU_WORDS)
    if r < 0.75:
        return rng.choice(_RU_PREFIX) + rng.choice(_RU_SUFFIX).lower()
    if r < 0.9:
        return f"{rng.choice(_RU_PREFIX)}-{rng.choice(_RU_SUFFIX)}"
    return f"{rng.choice(_RU_ADJ)} {rng.choice(_RU_NOUN).lower()}"


def company(rng: random.Random, latin: bool) -> tuple[str, str]:
    """(display name as the CRM holds it, the bare brand used for the domain)."""
    if latin:
        body = rng.choice(_EN_WORDS)
        if rng.random() < 0.7:
            body = f"{body} {rng.choice(_EN_KIND)}"
        if rng.random() < 0.15:  # a foreign brand registered as a Russian company
            return f"ООО {_quote(rng, body)}", body
        return f"{body} {rng.choice(_EN_FORMS)}", body
    form = _pick_weighted(rng, _RU_FORMS)
    if form == "ИП":
        last, first, patronymic, _ = ru_person_parts(rng)
        return f"ИП {last} {first[0]}.{patronymic[0]}.", last
    body = ru_company_body(rng)
    return f"{form} {_quote(rng, body)}", body


def billing_legal_name(rng: random.Random, crm_name: str) -> str:
    """The name a billing system keeps: often the full legal form, or in upper case."""
    r = rng.random()
    if crm_name.startswith("ООО ") and r < 0.3:
        return "Общество с ограниченной ответственностью " + crm_name[4:]
    if crm_name.startswith("АО ") and r < 0.3:
        return "Акционерное общество " + crm_name[3:]
    if r > 0.9:
        return crm_name.upper()
    return crm_name


# ---------------------------------------------------------------- people
_RU_MALE = (
    "Александр", "Алексей", "Андрей", "Артём", "Борис", "Вадим", "Виктор", "Владимир", "Дмитрий",
    "Евгений", "Иван", "Игорь", "Кирилл", "Максим", "Михаил", "Никита", "Олег", "Павел", "Роман",
    "Сергей", "Степан", "Юрий",
)  # fmt: skip
_RU_FEMALE = (
    "Алина", "Анастасия", "Анна", "Валерия", "Вера", "Дарья", "Екатерина", "Елена", "Ирина",
    "Ксения", "Мария", "Наталья", "Ольга", "Полина", "Светлана", "Татьяна", "Юлия",
)  # fmt: skip
_RU_LAST = (
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
    "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
    "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин",
    "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев", "Григорьев", "Романов", "Воробьёв",
    "Сергеев", "Фролов", "Беляев", "Тарасов", "Белов", "Комаров", "Жуков", "Киселёв",
    "Ковальский", "Вишневский", "Островский", "Гриценко", "Шевченко", "Ким", "Цой",
)  # fmt: skip
_RU_FATHER = (
    "Александр", "Алексей", "Андрей", "Борис", "Виктор", "Владимир", "Дмитрий", "Евгений",
    "Иван", "Игорь", "Михаил", "Олег", "Павел", "Пётр", "Сергей", "Юрий", "Николай", "Геннадий",
)  # fmt: skip
_EN_FIRST = (
    "James", "John", "Robert", "Michael", "David", "Thomas", "Daniel", "Mark", "Emma", "Olivia",
    "Sophia", "Laura", "Anna", "Julia", "Sarah", "Hannah", "Lukas", "Jonas", "Mia", "Lea",
)  # fmt: skip
_EN_LAST = (
    "Smith", "Johnson", "Brown", "Miller", "Davis", "Wilson", "Taylor", "Anderson", "Müller",
    "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Clark",
)  # fmt: skip


def _patronymic(father: str, female: bool) -> str:
    if father.endswith("ий"):  # Юрий -> Юрьевич
        return father[:-2] + ("ьевна" if female else "ьевич")
    if father.endswith("й"):  # Сергей -> Сергеевич
        return father[:-1] + ("евна" if female else "евич")
    stem = "Петр" if father == "Пётр" else father
    return stem + ("овна" if female else "ович")


def _female_last(last: str) -> str:
    if last.endswith(("ов", "ев", "ёв", "ин")):
        return last + "а"
    if last.endswith("ский"):
        return last[:-4] + "ская"
    return last


def ru_person_parts(rng: random.Random) -> tuple[str, str, str, bool]:
    """(last name, first name, patronymic, is_female)."""
    female = rng.random() < 0.45
    first = rng.choice(_RU_FEMALE if female else _RU_MALE)
    last = rng.choice(_RU_LAST)
    if female:
        last = _female_last(last)
    return last, first, _patronymic(rng.choice(_RU_FATHER), female), female


def person(rng: random.Random, latin: bool) -> tuple[str, str, str]:
    """(full name as written in the CRM, first name, last name)."""
    if latin:
        first, last = rng.choice(_EN_FIRST), rng.choice(_EN_LAST)
        return f"{first} {last}", first, last
    last, first, patronymic, _ = ru_person_parts(rng)
    r = rng.random()
    if r < 0.35:
        full = f"{last} {first} {patronymic}"
    elif r < 0.8:
        full = f"{first} {last}"
    elif r < 0.9:
        full = f"{last} {first[0]}.{patronymic[0]}."
    else:
        full = f"{last} {first}"
    return full, first, last


JOB_TITLES_RU = (
    ("Генеральный директор", "decision_maker"),
    ("Финансовый директор", "decision_maker"),
    ("Коммерческий директор", "decision_maker"),
    ("ИТ-директор", "decision_maker"),
    ("Руководитель отдела закупок", "influencer"),
    ("Главный инженер", "influencer"),
    ("Руководитель проекта", "influencer"),
    ("Главный бухгалтер", "user"),
    ("Менеджер по закупкам", "user"),
    ("Специалист", "user"),
    ("Юрист", "other"),
    ("Ассистент", "other"),
)
JOB_TITLES_EN = (
    ("CEO", "decision_maker"),
    ("CFO", "decision_maker"),
    ("Head of IT", "decision_maker"),
    ("Procurement Manager", "influencer"),
    ("Project Lead", "influencer"),
    ("Operations Manager", "user"),
    ("Analyst", "user"),
    ("Legal Counsel", "other"),
)

# ---------------------------------------------------------------- transliteration
_TRANSLIT = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya", "ü": "ue", "ä": "ae",
    "ö": "oe", "ß": "ss",
}  # fmt: skip


def slug(text: str, limit: int = 18) -> str:
    """Lower-case latin letters only: `Северный ветер` -> `severnyyveter`."""
    out = []
    for ch in text.lower():
        if "a" <= ch <= "z":
            out.append(ch)
        else:
            out.append(_TRANSLIT.get(ch, ""))
    return "".join(out)[:limit] or "company"


def domain(brand: str, unique: int, tld: str, *, billing_only: bool = False) -> str:
    """A domain unique in the drop: letters, then the decimal `unique` (billing-only ones with a dash).

    The letters never contain digits or a dash, so two different `unique` numbers (or an
    account and a billing-only customer) can never give the same domain.
    """
    sep = "-" if billing_only else ""
    return f"{slug(brand)}{sep}{unique}.{tld}"


def email(first: str, last: str, dom: str, rng: random.Random) -> str:
    f, la = slug(first, 12), slug(last, 16)
    r = rng.random()
    local = f"{f}.{la}" if r < 0.6 else (f"{f[0]}.{la}" if r < 0.85 else f"{la}")
    return f"{local}@{dom}"


def phone(rng: random.Random) -> str:
    code = rng.randrange(900, 1000)
    a, b, c = rng.randrange(1000), rng.randrange(100), rng.randrange(100)
    r = rng.random()
    if r < 0.45:
        return f"+7 ({code}) {a:03d}-{b:02d}-{c:02d}"
    if r < 0.7:
        return f"8 {code} {a:03d} {b:02d} {c:02d}"
    if r < 0.9:
        return f"+7{code}{a:03d}{b:02d}{c:02d}"
    return f"+7-{code}-{a:03d}-{b:02d}-{c:02d}"


# ---------------------------------------------------------------- tax ids (INN)
_INN_WEIGHTS = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_PERMUTE = 387_420_489  # 3**18: coprime to 10**9, so i -> i * P + o is a permutation of 9 digits


def inn(unique: int, salt: int) -> str:
    """A 10-digit Russian company INN with a valid check digit, unique per `unique` < 10**9."""
    body = (unique * _PERMUTE + salt) % 1_000_000_000
    digits = f"{body:09d}"
    check = sum(int(d) * w for d, w in zip(digits, _INN_WEIGHTS, strict=True)) % 11 % 10
    return digits + str(check)


def written_inn(rng: random.Random, value: str) -> str:
    """An INN as people type it: mostly plain, sometimes with spaces or dashes."""
    r = rng.random()
    if r < 0.8:
        return value
    if r < 0.92:
        return f"{value[:4]} {value[4:]}"
    return f"{value[:4]}-{value[4:7]}-{value[7:]}"


def to_base36(n: int) -> str:
    chars = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    while True:
        n, r = divmod(n, 36)
        out.append(chars[r])
        if n == 0:
            return "".join(reversed(out))
