"""Static checks of the Docker deployment: docker-compose.yml, Dockerfile, .dockerignore, .env.example.

There is no Docker engine here, so these tests read the files as data: YAML for
the compose file, instructions for the Dockerfile, and resolve compose's
`${VAR}` interpolation themselves (with the same rules as Compose) to check what
the containers would really get.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"

AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
    "airflow-init": None,
}
OTHER_SERVICES = {"postgres", "redis", "warehouse"}

B2B_HOME = "/opt/airflow/b2b_home"
B2B_SOURCE_DIR = "/opt/b2b/drop"

# Names of variables (environment keys, or `${VAR}` names) that hold a secret.
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|FERNET|TOKEN|_KEY$|_AUTH$", re.IGNORECASE)


# --- Compose interpolation ------------------------------------------------------------------------

_REFERENCE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.DOTALL)


class MissingVariableError(Exception):
    """A `${VAR:?message}` whose variable is unset or empty: compose refuses to start."""


def references(text: str) -> list[tuple[str, str | None, str | None]]:
    """The `(name, operator, argument)` of every `$VAR` / `${VAR...}` in `text`; `$$` is an escape."""
    refs = []
    for m in _REFERENCE.finditer(text):
        if m["escaped"]:
            continue
        if m["named"]:
            refs.append((m["named"], None, None))
            continue
        braced = _BRACED.fullmatch(m["braced"])
        if braced is None:
            raise ValueError(f"not a valid compose interpolation: ${{{m['braced']}}} in {text!r}")
        refs.append((braced["name"], braced["op"], braced["arg"]))
    return refs


def interpolate(text: str, env: dict[str, str]) -> str:
    """`text` as Compose resolves it with the variables `env` (the .env file)."""

    def resolve(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        if m["named"]:
            return env.get(m["named"], "")
        braced = _BRACED.fullmatch(m["braced"])
        assert braced is not None, m["braced"]
        name, op, arg = braced["name"], braced["op"], braced["arg"]
        value = env.get(name)
        unset_or_empty = not value if op and op.startswith(":") else value is None
        if op in (":-", "-"):
            return arg if unset_or_empty else value
        if op in (":?", "?"):
            if unset_or_empty:
                raise MissingVariableError(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return "" if unset_or_empty else arg
        return value or ""

    return _REFERENCE.sub(resolve, text)


def walk_strings(node, path=()):
    """Every string in a parsed YAML tree (keys excluded), with its path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk_strings(value, (*path, i))
    elif isinstance(node, str):
        yield path, node


def interpolate_tree(node, env):
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def is_required_reference(value: str) -> bool:
    """True when `value` is exactly one `${VAR}` / `${VAR:?...}`: no literal, no default."""
    m = _REFERENCE.fullmatch(value.strip())
    if m is None or not m["braced"]:
        return False
    braced = _BRACED.fullmatch(m["braced"])
    return braced is not None and braced["op"] in (None, ":?", "?")


_URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*:(?P<password>\$\{[^}]*\}|[^@\s/]*)@")


def literal_secrets(compose: dict) -> list[str]:
    """Where the compose file holds a secret that is not a `${VAR}` from .env."""
    problems = []
    for section, body in compose.items():
        if section != "services" and not section.startswith("x-"):
            continue
        for path, value in walk_strings(body):
            where = "/".join(map(str, (section, *path)))
            key = str(path[-1]) if path else ""
            if "environment" in path and SECRET_NAME.search(key) and not is_required_reference(value):
                problems.append(f"{where}: {value!r}")
            for m in _URL_CREDENTIALS.finditer(value):
                if not is_required_reference(m["password"]):
                    problems.append(f"{where}: password {m['password']!r} in a URL")
            for name, op, arg in references(value):
                if SECRET_NAME.search(name) and op in (":-", "-"):
                    problems.append(f"{where}: secret {name} has a default {arg!r}")
        for service_name, service in body.items() if section == "services" else []:
            command = service.get("command") or []
            if isinstance(command, str):
                passwords = re.findall(r"--requirepass\s+(\$\{[^}]*\}|\S+)", command)
            else:
                passwords = [value for flag, value in itertools.pairwise(command) if flag == "--requirepass"]
            for value in passwords:
                if not is_required_reference(str(value)):
                    problems.append(f"services/{service_name}/command: --requirepass {value!r}")
    return problems


def used_variables(compose: dict) -> set[str]:
    return {name for _, value in walk_strings(compose) for name, _, _ in references(value)}


# --- Fixtures -------------------------------------------------------------------------------------


def read_env_example() -> dict[str, str]:
    variables: dict[str, str] = {}
    for lineno, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example:{lineno}: not NAME=value: {line!r}"
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), f".env.example:{lineno}: bad name {name!r}"
        assert name not in variables, f".env.example:{lineno}: {name} listed twice"
        variables[name] = value
    return variables


@pytest.fixture(scope="module")
def compose() -> dict:
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict)
    return doc


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_example()


@pytest.fixture(scope="module")
def dotenv(env_example) -> dict[str, str]:
    """A filled-in .env: .env.example with a made-up value for every empty variable."""
    return {name: value or f"x{name.lower()}0" for name, value in env_example.items()}


@pytest.fixture(scope="module")
def resolved(compose, dotenv) -> dict:
    """The compose file as `docker compose config` would see it with that .env."""
    return interpolate_tree(compose, dotenv)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def volume_mounts(service: dict) -> dict[str, tuple[str, str]]:
    """Container path -> (source, options) of the service's volumes (short or long syntax)."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts[volume["target"]] = (volume.get("source", ""), "ro" if volume.get("read_only") else "")
            continue
        # SOURCE:TARGET[:OPTIONS]; the source may hold `${VAR:-default}`, the target is absolute.
        m = re.fullmatch(r"(?P<source>.*):(?P<target>/[^:]*)(?::(?P<options>[a-z,]+))?", volume)
        assert m, f"not a SOURCE:TARGET[:OPTIONS] volume: {volume!r}"
        mounts[m["target"]] = (m["source"], m["options"] or "")
    return mounts


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


# --- docker-compose.yml ---------------------------------------------------------------------------


def test_all_services_are_defined(compose):
    missing = (set(AIRFLOW_SERVICES) | OTHER_SERVICES) - set(compose["services"])
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_airflow_service_builds_the_project_image(compose, name):
    service = compose["services"][name]
    build = service.get("build")
    assert build is not None, f"{name} does not build from the project's Dockerfile"
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (COMPOSE_FILE.parent / context / dockerfile).resolve() == DOCKERFILE
    assert DOCKERFILE.is_file()


def test_every_airflow_named_service_builds_the_project_image(compose):
    for name, service in compose["services"].items():
        if name.startswith("airflow-"):
            assert service.get("build") is not None, f"{name} runs another image than the project's"


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_airflow_service_gets_the_common_environment(resolved, name):
    service = resolved["services"][name]
    env = environment(service)
    assert env.get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor"
    assert env.get("AIRFLOW__CORE__LOAD_EXAMPLES", "").lower() == "false"
    assert env.get("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "").lower() == "true"
    assert env.get("AIRFLOW__CORE__AUTH_MANAGER")
    assert env.get("AIRFLOW__CORE__FERNET_KEY")
    assert env.get("AIRFLOW__API_AUTH__JWT_SECRET")

    for key in ("AIRFLOW_CONN_B2B_WAREHOUSE", "B2B_WAREHOUSE_DSN"):
        url = urlsplit(env.get(key, ""))
        assert url.scheme in ("postgres", "postgresql"), f"{name}: {key} is not a postgres URL"
        assert url.hostname == "warehouse", f"{name}: {key} does not point at the warehouse service"
        assert url.username and url.password and url.path.strip("/"), f"{name}: {key} lacks user/password/db"

    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
        assert urlsplit(env.get(key, "")).hostname == "postgres", f"{name}: {key} is not the metadata DB"
    assert urlsplit(env.get("AIRFLOW__CELERY__BROKER_URL", "")).hostname == "redis"

    execution_api = urlsplit(env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", ""))
    assert execution_api.hostname == "airflow-apiserver" and execution_api.path.rstrip("/") == "/execution"

    assert env.get("B2B_HOME") == B2B_HOME
    assert env.get("B2B_SOURCE_DIR") == B2B_SOURCE_DIR
    mounts = volume_mounts(service)
    home_source, _ = mounts.get(B2B_HOME, ("", ""))
    assert home_source in (resolved.get("volumes") or {}), f"{name}: B2B_HOME is not on a named volume"
    drop_source, drop_options = mounts.get(B2B_SOURCE_DIR, ("", ""))
    assert drop_source == "./drop", f"{name}: the drop is not the bind mount of B2B_DROP_DIR (./drop)"
    assert "ro" in drop_options.split(","), f"{name}: the drop should be mounted read-only"


def test_drop_dir_comes_from_b2b_drop_dir(compose):
    sources = {volume_mounts(compose["services"][name]).get(B2B_SOURCE_DIR, ("",))[0] for name in AIRFLOW_SERVICES}
    assert sources == {"${B2B_DROP_DIR:-./drop}"}


def test_warehouse_connection_matches_the_warehouse_service(resolved):
    warehouse = environment(resolved["services"]["warehouse"])
    url = urlsplit(environment(resolved["services"]["airflow-worker"])["AIRFLOW_CONN_B2B_WAREHOUSE"])
    assert url.username == warehouse.get("POSTGRES_USER")
    assert url.password == warehouse.get("POSTGRES_PASSWORD")
    assert url.path.strip("/") == warehouse.get("POSTGRES_DB")
    assert url.port in (None, 5432)


def test_service_commands_follow_the_official_shape(compose):
    for name, command in AIRFLOW_SERVICES.items():
        if command is not None:
            assert compose["services"][name].get("command") == command, name
    ports = [str(p) for p in compose["services"]["airflow-apiserver"].get("ports", [])]
    assert any(p.endswith(":8080") for p in ports), "the api-server does not publish port 8080"


def test_services_have_healthchecks_and_start_in_order(compose):
    services = compose["services"]
    for name, service in services.items():
        if name in ("airflow-init", "airflow-cli"):
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in AIRFLOW_SERVICES:
        deps = depends_on(services[name])
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("redis") == "service_healthy", name
        if name != "airflow-init":
            assert deps.get("airflow-init") == "service_completed_successfully", name
    assert depends_on(services["airflow-worker"]).get("warehouse") == "service_healthy"


def test_warehouse_has_its_own_volume(compose):
    services, volumes = compose["services"], compose.get("volumes") or {}
    warehouse = volume_mounts(services["warehouse"])
    metadata = volume_mounts(services["postgres"])
    warehouse_sources = {source for source, _ in warehouse.values()}
    metadata_sources = {source for source, _ in metadata.values()}
    assert warehouse_sources, "the warehouse has no volume"
    assert warehouse_sources <= set(volumes), "the warehouse's data is not on a named volume"
    assert metadata_sources <= set(volumes), "the metadata DB's data is not on a named volume"
    assert not warehouse_sources & metadata_sources, "the warehouse shares a volume with the metadata DB"
    assert str(services["warehouse"]["image"]).startswith("postgres:")
    assert services["warehouse"]["image"] != services["postgres"]["image"] or warehouse != metadata


def test_no_literal_secret_in_compose(compose):
    problems = literal_secrets(compose)
    assert not problems, "secrets must come from .env as ${VAR}:\n" + "\n".join(problems)


def test_the_secret_check_catches_literals(compose):
    leaky = yaml.safe_load(COMPOSE_FILE.read_text())
    leaky["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "airflow"
    leaky["services"]["warehouse"]["environment"]["POSTGRES_PASSWORD"] = "${B2B_WAREHOUSE_PASSWORD:-b2b}"
    common = leaky["x-airflow-common"]["environment"]
    common["B2B_WAREHOUSE_DSN"] = "postgresql://b2b:hunter2@warehouse:5432/analytics"
    problems = literal_secrets(leaky)
    assert any("postgres/environment/POSTGRES_PASSWORD" in p for p in problems)
    assert any("B2B_WAREHOUSE_PASSWORD has a default" in p for p in problems)
    assert any("'hunter2' in a URL" in p for p in problems)


def test_compose_refuses_to_start_without_its_secrets(compose, dotenv):
    secrets = sorted(name for name in used_variables(compose) if SECRET_NAME.search(name))
    assert secrets, "no secret is read from .env"
    for name in secrets:
        without = {key: value for key, value in dotenv.items() if key != name}
        with pytest.raises(MissingVariableError, match=name):
            interpolate_tree(compose, without)


def test_every_compose_variable_is_in_env_example(compose, env_example):
    missing = used_variables(compose) - set(env_example)
    assert not missing, f".env.example does not list: {sorted(missing)}"
    unused = set(env_example) - used_variables(compose)
    assert not unused, f".env.example lists variables docker-compose.yml does not use: {sorted(unused)}"


def test_env_example_holds_no_secret(env_example):
    filled = {name: value for name, value in env_example.items() if SECRET_NAME.search(name) and value}
    assert not filled, f".env.example must leave secrets empty: {sorted(filled)}"
    gitignored = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert ".env" in gitignored, ".env must be gitignored"


def test_interpolation_rules():
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET:-d}/${EMPTY:-d}/${EMPTY-d}/${UNSET-d}/$$HOME/$SET", env) == "v/d//d/$HOME/v"
    with pytest.raises(MissingVariableError):
        interpolate("${EMPTY:?needed}", env)
    assert interpolate("${EMPTY?needed}", env) == ""
    assert is_required_reference("${A:?msg}") and is_required_reference("${A}")
    assert not is_required_reference("${A:-x}") and not is_required_reference("x${A}")


# --- Dockerfile -----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, args = current.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        current = ""
    return instructions


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY/ADD from the build context."""
    result = []
    for keyword, args in dockerfile_instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        words = [w for w in args.split() if not w.startswith("--")]
        if any(w.startswith("--from") for w in args.split()):
            continue
        result.append(([w.rstrip("/") or "/" for w in words[:-1]], words[-1]))
    return result


def copied_to(source: str) -> set[str]:
    return {dest for sources, dest in copies() for s in sources if s == source}


def pin(requirements: list[str], name: str) -> str | None:
    for requirement in requirements:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+).*", requirement)
        if m and m[1].lower().replace("_", "-") == name:
            return m[2]
    return None


def test_dockerfile_airflow_matches_the_pins():
    froms = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert froms, "the Dockerfile has no FROM"
    m = re.fullmatch(r"apache/airflow:(?P<airflow>\d+\.\d+\.\d+)-python(?P<python>\d+\.\d+)", froms[-1].split()[0])
    assert m, f"the image is not built FROM an official apache/airflow:X.Y.Z-pythonA.B tag: {froms[-1]!r}"

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert pin(project["dependencies"], "apache-airflow") == m["airflow"], "FROM tag != pyproject.toml pin"
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    assert pin(constraints, "apache-airflow") == m["airflow"], "FROM tag != constraints.txt pin"
    assert m["python"] + ".0" in SpecifierSet(project.get("requires-python", "")), "python outside requires-python"


def test_dockerfile_copies_the_project():
    assert "/opt/airflow/dags" in {d.rstrip("/") for d in copied_to("dags")}
    assert "/opt/airflow/plugins" in {d.rstrip("/") for d in copied_to("plugins")}
    assert "/opt/b2b/dbt_project" in {d.rstrip("/") for d in copied_to("dbt_project")}
    assert "/opt/b2b/expectations" in {d.rstrip("/") for d in copied_to("expectations")}
    for name in ("pyproject.toml", "constraints.txt"):
        assert {d.rstrip("/") for d in copied_to(name)} & {"/opt/b2b", f"/opt/b2b/{name}"}, name
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("readme")
    if isinstance(readme, str):
        assert copied_to(readme), f"the package build needs {readme} (pyproject.toml readme)"
    for sources, _ in copies():
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context"


def test_dockerfile_installs_the_project_as_airflow_with_constraints():
    user, installs = "root", []
    for keyword, args in dockerfile_instructions():
        if keyword == "USER":
            user = args.split(":")[0]
        elif keyword == "RUN" and re.search(r"\bpip install\b", args):
            installs.append((user, args))
    project_installs = [(user, args) for user, args in installs if re.search(r"\s/opt/b2b/?(\s|$)", args)]
    assert project_installs, "no `pip install ... /opt/b2b` in the Dockerfile"
    for user, args in installs:
        assert user == "airflow", f"pip install must run as the airflow user, not {user}: {args}"
    user, args = project_installs[0]
    assert "--no-cache-dir" in args
    m = re.search(r"(?:-c|--constraint)[\s=]+(\S+)", args)
    assert m, "the project is installed without -c constraints.txt"
    assert m[1] in ("constraints.txt", "/opt/b2b/constraints.txt")


# --- .dockerignore --------------------------------------------------------------------------------


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_excludes(path: str, rules: list[str]) -> bool:
    """Whether Docker leaves `path` out of the build context: the last rule matching it, or a parent, wins."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = _glob_to_regex(rule.lstrip("!").strip("/"))
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def dockerignore_rules() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_dockerignore_keeps_secrets_and_state_out():
    rules = dockerignore_rules()
    for path in (".env", ".venv/bin/python", ".git/HEAD", ".b2b/reports/x.html", "drop/crm/deals.csv"):
        assert dockerignore_excludes(path, rules), f"{path} would be sent to the Docker build"
    for path in ("plugins/b2b_pipeline.egg-info/PKG-INFO", "dbt_project/target/manifest.json"):
        assert dockerignore_excludes(path, rules), f"{path} would be sent to the Docker build"


def test_dockerignore_keeps_what_the_dockerfile_copies():
    rules = dockerignore_rules()
    for sources, _ in copies():
        for source in sources:
            inside = f"{source}/x.py" if (ROOT / source).is_dir() else source
            assert not dockerignore_excludes(source, rules), f"COPY {source}: excluded by .dockerignore"
            assert not dockerignore_excludes(inside, rules), f"COPY {source}: content excluded by .dockerignore"


def test_dockerignore_matching_rules():
    assert dockerignore_excludes("a/b", ["*"]) and not dockerignore_excludes("a/b", ["*", "!a"])
    assert dockerignore_excludes("a/x/__pycache__/m.pyc", ["**/__pycache__"])
    assert not dockerignore_excludes(".env", ["!plugins"])


# --- the production shape shared with the Celery integration test ---------------------------------


def test_compose_runs_the_shape_the_celery_test_runs(compose):
    """docker-compose.yml's common environment is `celery_environment(COMPOSE)` plus the container
    deployment's own keys, key for key and value for value (before interpolation)."""
    from b2b_pipeline.orchestration.production_shape import COMPOSE, COMPOSE_ONLY, celery_environment

    env = environment(compose["x-airflow-common"])
    shape = celery_environment(COMPOSE)
    assert {key: env.get(key) for key in shape} == shape, "compose and production_shape.COMPOSE differ"
    extra = set(env) - set(shape)
    assert extra == set(COMPOSE_ONLY), f"keys only in compose, not declared in COMPOSE_ONLY: {extra ^ COMPOSE_ONLY}"


def test_every_airflow_service_inherits_the_shape(compose):
    from b2b_pipeline.orchestration.production_shape import COMPOSE, celery_environment

    shape = celery_environment(COMPOSE)
    for name in AIRFLOW_SERVICES:
        env = environment(compose["services"][name])
        changed = {key for key in shape if env.get(key) != shape[key]}
        assert not changed, f"{name} overrides the shared shape: {sorted(changed)}"
