"""A demo CRM: companies, clients with Russian numbers in messy spellings, employees,
workstations, and the database logins the demo's ingester and CRM clients use."""

from __future__ import annotations

import random

import psycopg

from ingester.queries import composed, query
from ingester.simulator.traffic import Traffic, messy, random_russian_number

# Surnames in their masculine form; a woman's adds -a (Ivanov, Ivanova), as Russian ones do.
SURNAMES = [
    "Ivanov",
    "Petrov",
    "Smirnov",
    "Kuznetsov",
    "Popov",
    "Vasiliev",
    "Sokolov",
    "Mikhailov",
    "Novikov",
    "Fedorov",
    "Morozov",
    "Volkov",
]
# The first employee (a woman: even places are) owns the line: she calls back new numbers.
LINE_OWNER_SURNAME = SURNAMES[0] + "a"
WOMEN = ["Anna", "Vera", "Daria", "Zoya", "Kira", "Maria"]
MEN = ["Boris", "Gleb", "Egor", "Igor", "Lev", "Oleg"]


def person(
    rng: random.Random, surname: str | None = None, woman: bool | None = None
) -> tuple[str, str]:
    """A first name and a surname that agree: (Maria, Kuznetsova), (Oleg, Sokolov)."""
    woman = rng.random() < 0.5 if woman is None else woman
    first = rng.choice(WOMEN if woman else MEN)
    surname = surname or rng.choice(SURNAMES)
    return first, surname + "a" if woman else surname


COMPANY_WORDS = [
    "Romashka",
    "Vektor",
    "Sever",
    "Almaz",
    "Kedr",
    "Orbita",
    "Start",
    "Volga",
    "Ural",
    "Neva",
]
INGESTER_LOGIN = "pgcti_demo_ingester"


GATEWAY_LOGIN = "pgcti_demo_gateway"


def workstation_login(workstation_id: int) -> str:
    return f"pgcti_demo_ws_{workstation_id}"


def seed(conn: psycopg.Connection, clients: int = 300, seed: int = 7) -> bool:
    """Fill an empty reference CRM; returns False when it already has employees."""
    if conn.execute(query("seed_has_employees")).fetchone()[0]:
        conn.execute(query("seed_line"), [Traffic.line, "Sales"])  # a demo CRM from before lines
        return False
    rng = random.Random(seed)
    employees = []
    for i, base in enumerate(SURNAMES):
        ext = str(101 + i)
        first, surname = person(rng, base, woman=i % 2 == 0)
        employees.append(
            conn.execute(query("seed_employee"), [surname, first, ext, i < 3]).fetchone()[0]
        )
        if i < 10:  # 111 and 112 have no desk: the board shows their calls as unrouted
            conn.execute(query("seed_workstation"), [f"desk-{ext}", ext])
    conn.execute(query("seed_line"), [Traffic.line, "Sales"])
    companies = [
        conn.execute(
            query("seed_company"),
            [f"{rng.choice(COMPANY_WORDS)} {rng.choice(['LLC', 'JSC', 'Group', 'Trade'])} {n}"],
        ).fetchone()[0]
        for n in range(40)
    ]
    with conn.cursor() as cur:
        for n in range(clients):
            client = cur.execute(
                query("seed_client"),
                [
                    "{} {} #{}".format(*person(rng), n + 1),
                    rng.choice(companies),
                    rng.choice(employees),
                ],
            ).fetchone()[0]
            for _ in range(rng.choice([1, 1, 1, 2])):
                cur.execute(
                    query("seed_client_phone"),
                    [client, messy(random_russian_number(rng), rng)],
                )
    return True


def ensure_logins(conn: psycopg.Connection) -> dict[int, str]:
    """The ingester's login and one login per workstation, bound in cti.client_login."""
    _ensure_role(conn, INGESTER_LOGIN, "cti_ingester")
    conn.execute(query("register_ingester_login"), [INGESTER_LOGIN])
    conn.execute(composed("grant_dialer", INGESTER_LOGIN))  # click-to-call from the desks
    logins = {}
    for (ws_id,) in conn.execute(query("seed_workstation_ids")).fetchall():
        login = workstation_login(ws_id)
        _ensure_role(conn, login, "cti_client")
        conn.execute(query("bind_workstation_login"), {"login": login, "ws": ws_id})
        logins[ws_id] = login
    return logins


def _ensure_role(conn: psycopg.Connection, login: str, group: str) -> None:
    if not conn.execute(query("role_exists"), [login]).fetchone():
        conn.execute(composed("create_login_in_role", login, group))


def desk_tokens(conn: psycopg.Connection) -> dict[int, str]:
    """The demo's gateway login, and a browser token (a day long) for each desk's login."""
    _ensure_role(conn, GATEWAY_LOGIN, "cti_gateway")
    return {
        ws_id: conn.execute(query("issue_desk_token"), [workstation_login(ws_id)]).fetchone()[0]
        for (ws_id,) in conn.execute(query("seed_workstation_ids")).fetchall()
    }
