"""examples/deploy/ (SPEC section 6): the systemd units, the HAProxy and nginx configurations
and the Kubernetes Deployment are valid for the tools that read them (``systemd-analyze
verify``, ``haproxy -c``, ``nginx -t``; the YAML is parsed, no cluster being at hand), their aiowsgi command lines are valid aiowsgi options,
and the time a stop may take agrees with the shutdown delay and the graceful timeout.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aiowsgi.cli import build_parser
from aiowsgi.config import Config
from tests.support.haproxy import haproxy_binary, tls_certificate
from tests.support.waits import scaled

DEPLOY = Path(__file__).resolve().parent.parent / "examples" / "deploy"
CHECK_TIMEOUT = 60.0


def tool(name):
    found = shutil.which(name) or next(
        (p for p in ("/usr/sbin/" + name, "/usr/bin/" + name) if os.path.exists(p)), None)
    assert found, "%s is not installed (make test installs it: tools/sysdeps.sh test)" % name
    return found


def run(argv, **kwargs):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=scaled(CHECK_TIMEOUT), **kwargs)


def aiowsgi_config(args):
    """The Config an aiowsgi command line (its arguments after the program) makes."""
    values = vars(build_parser().parse_args(args))
    for name in ("app", "config", "print_config", "check_config"):
        values.pop(name, None)
    return Config(**values)


def unit_values(path):
    """{key: value} of a systemd unit file (continuation lines joined; last one wins)."""
    text = path.read_text().replace("\\\n", " ")
    return dict(re.findall(r"^(\w+)=(.*)$", text, re.MULTILINE))


# -- systemd -----------------------------------------------------------------------------------

def test_systemd_units_verify(tmp_path):
    # the units as installed, but for the programs they run: an aiowsgi script that runs this
    # checkout's (systemd-analyze checks that ExecStart's program exists; the interpreter
    # running the tests may have none of its own) and a folder that exists
    script = tmp_path / "aiowsgi"
    script.write_text("#!/bin/sh\nexec %s -m aiowsgi \"$@\"\n" % shlex.quote(sys.executable))
    script.chmod(0o755)
    for name in ("aiowsgi.service", "aiowsgi.socket"):
        text = (DEPLOY / name).read_text()
        text = text.replace("/srv/myapp/venv/bin/aiowsgi", str(script))
        text = text.replace("/srv/myapp", str(tmp_path))
        (tmp_path / name).write_text(text)
    result = run([tool("systemd-analyze"), "verify", tmp_path / "aiowsgi.service",
                  tmp_path / "aiowsgi.socket"], cwd=tmp_path)
    # (it warns about what it ignores on stderr, with status 0: nothing is acceptable)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_systemd_service_waits_for_the_delay_and_the_graceful_timeout():
    service = unit_values(DEPLOY / "aiowsgi.service")
    assert service["Type"] == "notify" and service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    args = shlex.split(service["ExecStart"])
    assert args[0].endswith("/aiowsgi") and "--bind" not in args  # the socket unit's socket
    config = aiowsgi_config(args[1:])
    assert config.health_path == "/healthz"
    assert int(service["TimeoutStopSec"]) == config.shutdown_delay + config.graceful_timeout + 5
    assert int(service["WatchdogSec"]) > 0


# -- HAProxy -----------------------------------------------------------------------------------

def test_haproxy_configuration_is_valid_and_checks_the_health_path():
    path = DEPLOY / "haproxy.cfg"
    result = run([haproxy_binary() or tool("haproxy"), "-c", "-f", path])
    assert result.returncode == 0, result.stdout + result.stderr
    text = path.read_text()
    assert "option httpchk GET /healthz" in text
    # the default retries: the point is that aiowsgi needs no more
    assert not re.search(r"^\s*(option redispatch|retry-on)", text, re.MULTILINE)
    # the command line in its comment is valid, and the checks take a host out before its
    # shutdown delay is over
    command = re.search(r"^#\s+aiowsgi (.*?)mysite", text.replace("\\\n#", ""),
                        re.MULTILINE | re.DOTALL).group(1)
    config = aiowsgi_config(shlex.split(command))
    inter, fall = re.search(r"default-server check inter (\d+)s fall (\d+)", text).groups()
    assert int(inter) * int(fall) < config.shutdown_delay


# -- nginx -------------------------------------------------------------------------------------

def test_nginx_site_is_valid(tmp_path):
    site = (DEPLOY / "nginx.conf").read_text()
    pem = tls_certificate(tmp_path)
    site = re.sub(r"ssl_certificate(_key)?\s+\S+;", lambda m: "ssl_certificate%s %s;"
                  % (m.group(1) or "", pem), site)
    (tmp_path / "site.conf").write_text(site)
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "%s\npid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp {\n"
        "    access_log off;\n    client_body_temp_path %s/body;\n    proxy_temp_path %s/proxy;\n"
        "    include %s/site.conf;\n}\n" % ("user root;" if os.geteuid() == 0 else "", tmp_path,
                                           tmp_path, tmp_path, tmp_path, tmp_path))
    result = run([tool("nginx"), "-t", "-p", tmp_path, "-c", conf, "-e",
                  tmp_path / "error.log"])
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


# -- Kubernetes --------------------------------------------------------------------------------

def test_kubernetes_deployment_gives_the_delay_and_the_graceful_timeout():
    import yaml  # (requirements-test.txt)

    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    kinds = {doc["kind"]: doc for doc in documents}
    assert set(kinds) == {"Deployment", "Service"}, list(kinds)
    deployment, service = kinds["Deployment"], kinds["Service"]
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    (container,) = pod["containers"]
    command = container["command"]
    assert command[0] == "aiowsgi"
    config = aiowsgi_config(command[1:])
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert list(config.bind) == ["0.0.0.0:%d" % port]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    # the kubelet waits the shutdown delay and the graceful timeout, and a little more
    grace = pod["terminationGracePeriodSeconds"]
    assert grace == config.shutdown_delay + config.graceful_timeout + 5
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"]) == (config.health_path, "http"), probe
    # the readiness probe notices a draining pod within the shutdown delay ...
    readiness = container["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < config.shutdown_delay
    # ... and liveness, which answers 503 as well meanwhile, does not kill it first
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > config.shutdown_delay


@pytest.mark.parametrize("name", sorted(p.name for p in DEPLOY.iterdir()))
def test_every_example_says_how_to_check_or_install_it(name):
    text = (DEPLOY / name).read_text()
    assert re.search(r"(Check|check|Install|install)", text.split("\n\n")[0]), name
