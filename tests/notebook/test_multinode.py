"""Several machines: ``workbench train`` with num_machines / machine_rank / main_process_ip, set on the
command line or read from SLURM.

Unit tests check the accelerate command (parsed by accelerate itself), the validation and the SLURM
variables; the slow tests start two "nodes" on this machine over loopback (one ``workbench train``
per machine rank, 1 CPU rank each, gloo), train to the end, and kill one node mid-run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from workbench.demo import make_tiny_model
from workbench.training import launch as wl
from workbench.training.launch import NOTEBOOK, accelerate_command, train_launch
from workbench.training.params import LaunchParams, ParamsError, load_train_params

ROOT = Path(__file__).resolve().parents[2]
DEMO_PARAMS = ROOT / "params" / "demo.yaml"
H200X8 = ROOT / "params" / "accelerate" / "h200x8.yaml"
MULTINODE = ROOT / "params" / "accelerate" / "multinode.yaml"
LAUNCH_TIMEOUT_S = 300
FAIL_FAST_S = 90  # a killed node must end the other well before any DDP timeout


def accelerate_args(cmd: list[str]):
    """``cmd`` as accelerate reads it: its parser, then the config file under the flags, then torchrun's view."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    args = launch_command_parser().parse_args(cmd[3:])
    _validate_launch_command(args)
    if args.num_machines > 1:
        prepare_multi_gpu_env(args)  # nproc_per_node, nnodes, node_rank (no port check off the main machine)
    return args


# --- the accelerate command ----------------------------------------------------------------------
def test_machine_settings_become_accelerate_flags() -> None:
    launch = LaunchParams(
        num_processes=16, num_machines=2, machine_rank=1, main_process_ip="10.0.0.1", main_process_port=29400
    )
    cmd = accelerate_command(launch, Path("job.json"))
    args = accelerate_args(cmd)
    assert (args.num_machines, args.num_processes, args.machine_rank) == (2, 16, 1)
    assert (args.main_process_ip, args.main_process_port) == ("10.0.0.1", 29400)
    assert (args.nproc_per_node, args.nnodes, args.node_rank) == ("8", "2", 1)
    assert wl.processes_per_machine(launch) == 8
    # Every rank runs the notebook layer's entry module, named by its string (training imports no notebook).
    assert (
        args.module and args.training_script == wl.RANK_ENTRY and args.training_script_args[0] == "--rank-run"
    )
    assert importlib.util.find_spec(wl.RANK_ENTRY) is not None
    # No port given: accelerate's 29500 on every machine, never "0" (a free port only the main one knows).
    launch.main_process_port = None
    assert "--main_process_port" not in accelerate_command(launch, Path("job.json"))


def test_flags_override_the_accelerate_config() -> None:
    """params/h200x8.yaml's one-node config on 2 nodes: 8 ranks a node, no YAML edited."""
    launch = LaunchParams(
        accelerate_config=str(H200X8), num_machines=2, machine_rank=1, main_process_ip="gpu01"
    )
    assert launch.layout() == (16, 2) and LaunchParams(accelerate_config=str(H200X8)).layout() == (8, 1)
    args = accelerate_args(accelerate_command(launch, Path("job.json")))
    assert (args.num_machines, args.num_processes, args.machine_rank, args.main_process_ip) == (
        2,
        16,
        1,
        "gpu01",
    )
    assert args.mixed_precision == "bf16" and args.multi_gpu  # the rest still comes from the file
    assert args.nproc_per_node == "8"
    # multinode.yaml's own values (machine_rank 0, 10.0.0.1) give way to the command line's.
    launch = LaunchParams(accelerate_config=str(MULTINODE), machine_rank=1, main_process_ip="gpu01")
    args = accelerate_args(accelerate_command(launch, Path("job.json")))
    assert (args.num_machines, args.num_processes, args.machine_rank, args.main_process_ip) == (
        2,
        16,
        1,
        "gpu01",
    )
    # Without machine settings the config alone decides, as before.
    cmd = accelerate_command(LaunchParams(accelerate_config=str(H200X8)), Path("job.json"))
    assert "--num_machines" not in cmd and "--machine_rank" not in cmd


def test_gpu_fit_counts_this_machines_share() -> None:
    two_nodes = LaunchParams(num_processes=16, num_machines=2, machine_rank=0, main_process_ip="gpu01")
    assert wl.check_gpu_fit(two_nodes, gpus=8) == []
    [problem] = wl.check_gpu_fit(two_nodes, gpus=4)
    assert (
        "num_processes 16 over num_machines 2: starts 8 ranks on this machine, but it has 4 GPU(s)" in problem
    )
    assert "num_processes: 8" in problem and "gradient_accumulation_steps by 2" in problem
    on_config = LaunchParams(
        accelerate_config=str(H200X8), num_machines=4, machine_rank=3, main_process_ip="a"
    )
    assert wl.processes_per_machine(on_config) == 8 and wl.check_gpu_fit(on_config, gpus=8) == []


# --- validation ----------------------------------------------------------------------------------
def test_machine_problems_are_reported_at_once() -> None:
    with pytest.raises(ParamsError) as caught:
        load_train_params(DEMO_PARAMS, {"num_processes": 3, "num_machines": 2, "machine_rank": 2})
    problems = caught.value.problems
    assert any(p.startswith("machine_rank: must be in [0, 2) with num_machines 2, got 2") for p in problems)
    assert any(
        p.startswith("num_processes: 3 ranks do not split evenly over num_machines 2") for p in problems
    )
    assert any(p.startswith("main_process_ip: required with num_machines 2") for p in problems)
    assert len(problems) == 3, problems

    with pytest.raises(ParamsError) as caught:
        load_train_params(
            DEMO_PARAMS,
            {"num_machines": 0, "batch_size": 0, "machine_rank": "one"},
        )
    problems = caught.value.problems
    assert "num_machines: must be at least 1, got 0" in problems
    assert any(p.startswith("machine_rank: expected") for p in problems)
    assert "batch_size: must be at least 1, got 0" in problems  # notebook parameters in the same list

    with pytest.raises(ParamsError) as caught:
        load_train_params(
            DEMO_PARAMS, {"num_machines": 2, "main_process_ip": "10.0.0.1", "main_process_port": 0}
        )
    assert any(p.startswith("machine_rank: required with num_machines 2") for p in caught.value.problems)
    assert any(
        p.startswith("main_process_port: 0 (a free port) works on one machine only")
        for p in caught.value.problems
    )

    _, launch = load_train_params(
        DEMO_PARAMS, {"num_machines": 2, "machine_rank": 1, "main_process_ip": "10.0.0.1"}
    )
    assert launch.layout() == (2, 2)  # demo.yaml's 2 ranks: one per machine


# --- SLURM ---------------------------------------------------------------------------------------
SLURM_TWO_NODES = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NUM_NODES": "2",
    "SLURM_NNODES": "2",
    "SLURM_JOB_NODELIST": "gpu[07-08]",
    "SLURM_NODEID": "1",
    "SLURM_PROCID": "1",
    "SLURM_NTASKS": "2",
}


@pytest.fixture
def slurm_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A SLURM job step on the second of two nodes, without SLURM's tools on PATH."""
    for name in list(os.environ):
        if name.startswith("SLURM_"):
            monkeypatch.delenv(name)
    for name, value in SLURM_TWO_NODES.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return tmp_path / "bin"


def launched(capsys: pytest.CaptureFixture, *overrides: str) -> tuple[str, list[str]]:
    """What ``workbench train --dry-run --params params/demo.yaml -p ...`` prints: its lines and the command."""
    values = dict(zip(overrides[::2], overrides[1::2], strict=True))
    assert train_launch(DEMO_PARAMS, values, dry_run=True) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("would launch: "))
    return out, line.removeprefix("would launch: ").split()


def test_slurm_gives_the_machine_settings(slurm_env: Path, capsys: pytest.CaptureFixture) -> None:
    out, cmd = launched(capsys)
    assert (
        "workbench: from SLURM job 4242: num_machines 2, machine_rank 1, main_process_ip gpu07, main_process_port 29742"
        in out
    )
    args = accelerate_args(cmd)
    assert (args.num_machines, args.num_processes, args.machine_rank) == (2, 2, 1)
    assert (args.main_process_ip, args.main_process_port, args.nproc_per_node) == ("gpu07", 29742, "1")


def test_slurm_nodelists(slurm_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = {
        "gpu[01-04,07]": "gpu01",
        "gpu[07,01-04]": "gpu07",
        "a1,b[1-2]": "a1",
        "rack[2-3]-n[08-10],c9": "rack2-n08",
        "node-7": "node-7",
    }
    for nodelist, first in cases.items():
        assert wl.first_slurm_host(nodelist) == first, nodelist
    # SLURM's own tool wins where it is installed.
    scontrol = slurm_env / "scontrol"
    scontrol.write_text(
        '#!/bin/sh\n[ "$1 $2 $3" = "show hostnames gpu[07-08]" ] && printf "main-07\\ngpu08\\n"\n'
    )
    scontrol.chmod(0o755)
    assert wl.slurm_launch_values()["main_process_ip"] == "main-07"
    # The step's nodes win over the job's; outside SLURM, or on one node, nothing is taken.
    monkeypatch.setenv("SLURM_STEP_NUM_NODES", "3")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "x[5-7]")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "3")
    scontrol.unlink()
    assert wl.slurm_launch_values() == {
        "num_machines": 3, "machine_rank": 1, "main_process_ip": "x5", "main_process_port": 29742
    }  # fmt: skip
    assert wl.slurm_launch_values({**SLURM_TWO_NODES, "SLURM_JOB_NUM_NODES": "1", "SLURM_NNODES": "1"}) == {}
    assert wl.slurm_launch_values({}) == {}


def test_explicit_params_win_over_slurm(slurm_env: Path, capsys: pytest.CaptureFixture) -> None:
    out, cmd = launched(capsys, "machine_rank", 0, "main_process_ip", "10.9.9.9", "num_processes", 4)
    assert "from SLURM job 4242: num_machines 2, main_process_port 29742\n" in out
    args = accelerate_args(cmd)
    assert (args.num_machines, args.num_processes, args.machine_rank) == (2, 4, 0)
    assert args.main_process_ip == "10.9.9.9"


def test_slurm_refuses_several_tasks_per_node(slurm_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NTASKS", "16")
    with pytest.raises(ParamsError, match="srun --ntasks-per-node=1"):
        train_launch(DEMO_PARAMS, {}, dry_run=True)


def test_slurm_values_are_checked_with_the_params(slurm_env: Path) -> None:
    with pytest.raises(ParamsError) as caught:  # 3 ranks cannot split over SLURM's 2 nodes
        train_launch(DEMO_PARAMS, {"num_processes": 3}, dry_run=True)
    assert any(
        p.startswith("num_processes: 3 ranks do not split evenly over num_machines 2")
        for p in caught.value.problems
    )


# --- two nodes over loopback ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One "machine": a ``workbench train`` in a session of its own, with its own cache folder and log."""

    def __init__(self, rank: int, cmd: list[str], root: Path) -> None:
        self.rank, self.log = rank, root / f"node{rank}.log"
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            "WORKBENCH_CACHE_DIR": str(root / f"node{rank}-cache"),  # node-local
        }
        env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(
                cmd, env=env, cwd=root, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def two_nodes(demo_run: Path, tiny_dir: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """``start(*overrides)``: machine ranks 0 and 1 of one run, started at once; both are killed at the end."""
    codes = (
        tmp_path_factory.getbasetemp() / "codes-cache"
    )  # shared by the nodes (and other tests): same codec
    nodes: list[Node] = []

    def start(*overrides: str) -> tuple[Node, Node, Path]:
        out = tmp_path / "train"  # shared by the nodes, as on a cluster filesystem
        port = free_port()
        values = {
            "train_data": demo_run / "03_validate" / "train.jsonl",
            "val_data": demo_run / "03_validate" / "val.jsonl",
            "model": tiny_dir,
            "output_dir": out,
            "codes_cache_dir": codes,
            "num_processes": 2,  # in all: one rank per node
            "num_machines": 2,
            "main_process_ip": "127.0.0.1",
            "main_process_port": port,
            "merge": "false",
            **dict(zip(overrides[::2], overrides[1::2], strict=True)),
        }
        for rank in (0, 1):
            cmd = [sys.executable, "-m", "workbench.cli", "train", "--params", str(DEMO_PARAMS)]
            for name, value in {**values, "machine_rank": rank}.items():
                cmd += ["-p", name, str(value)]
            nodes.append(Node(rank, cmd, tmp_path))
        return nodes[0], nodes[1], out

    yield start
    for node in nodes:
        node.kill()


def wait_for(node_or_nodes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for node in node_or_nodes:
        try:
            node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"node {node.rank} still running after {timeout:.0f} s:\n{node.output()[-4000:]}")


@pytest.mark.slow
def test_two_nodes_train_to_the_end(two_nodes) -> None:
    node0, node1, out = two_nodes("max_steps", "10", "save_steps", "5", "eval_steps", "5")
    wait_for([node0, node1], LAUNCH_TIMEOUT_S)
    for node in (node0, node1):
        assert node.proc.returncode == 0, node.output()[-6000:]
        cmd = next(x for x in node.output().splitlines() if x.startswith("launching: "))[11:].split()
        args = accelerate_args(cmd)
        assert (args.num_machines, args.num_processes, args.machine_rank) == (2, 2, node.rank)
        assert (args.main_process_ip, args.nproc_per_node) == ("127.0.0.1", "1")
    assert "next:" in node0.output() and "next:" not in node1.output()  # said once, by the main machine

    report = out / f"{NOTEBOOK}.ipynb"
    assert report.is_file() and (out / f"{NOTEBOOK}.html").is_file()
    assert (out / "logs" / f"{NOTEBOOK}.rank1.ipynb").is_file()  # rank 1: the rank of node 1
    for ipynb in (report, out / "logs" / f"{NOTEBOOK}.rank1.ipynb"):
        nb = json.loads(ipynb.read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert errors == [], (ipynb, errors)
    record = json.loads((out / "run.json").read_text())
    assert record["world_size"] == 2 and record["result"]["global_step"] == 10
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert "effective batch 4 (2 x 1 accumulation x 2 ranks)" in node0.output()


@pytest.mark.slow
@pytest.mark.parametrize("killed", [0, 1], ids=["main-node-killed", "other-node-killed"])
def test_a_killed_node_ends_the_other_fast(two_nodes, killed: int) -> None:
    # A long run (it is killed long before its end); a log line at every step shows training started.
    node0, node1, out = two_nodes(
        "max_steps", "300", "gradient_accumulation_steps", "4", "logging_steps", "1",
        "save_steps", "100", "eval_steps", "100", "ddp_timeout", "60",
    )  # fmt: skip
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    metrics = out / "metrics.jsonl"
    while not (metrics.is_file() and metrics.read_text().strip()):
        for node in (node0, node1):
            assert node.proc.poll() is None, (
                f"node {node.rank} ended before training:\n{node.output()[-6000:]}"
            )
        assert time.monotonic() < deadline, "training did not start in time"
        time.sleep(0.2)
    victim, survivor = (node0, node1) if killed == 0 else (node1, node0)
    processes = [
        p for node in (node0, node1) for p in psutil.Process(node.proc.pid).children(recursive=True)
    ]  # launchers, ranks, kernels of both nodes
    started = time.monotonic()
    victim.kill()
    wait_for([survivor], FAIL_FAST_S)
    seconds = time.monotonic() - started
    print(f"node {survivor.rank} ended {seconds:.1f} s after node {victim.rank} was killed")

    text = survivor.output()
    assert survivor.proc.returncode != 0, text[-6000:]
    assert f"rank {survivor.rank} failed" in text and "the launch of 04_train failed" in text, text[-6000:]
    assert not (out / "run.json").exists()
    # Nothing trains on: not the killed node's ranks, nor the survivor's.
    _, alive = psutil.wait_procs(processes, timeout=15)
    for p in alive:
        p.kill()
    assert alive == [], f"still running: {[p.pid for p in alive]}"


def test_the_sbatch_example_launches_two_nodes_of_eight(
    slurm_env: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """params/slurm_h200x8.sbatch's command, on its second node: 16 ranks, 8 here, the recipe's batch."""
    import shlex

    from workbench.training.param_schema import parse_cli_value

    script = (ROOT / "params" / "slurm_h200x8.sbatch").read_text()
    assert "#SBATCH --ntasks-per-node=1" in script and "#SBATCH --nodes=2" in script
    command = script[script.index("workbench train --params") :].replace("\\\n", " ")  # joined lines
    words = shlex.split(command, comments=True)
    assert words[:4] == ["workbench", "train", "--params", "params/h200x8.yaml"]
    pairs = words[4:]
    assert pairs[::3] == ["-p"] * (len(pairs) // 3) and len(pairs) % 3 == 0, pairs
    overrides = {name: parse_cli_value(value) for name, value in zip(pairs[1::3], pairs[2::3], strict=True)}
    monkeypatch.chdir(ROOT)
    assert train_launch(words[3], overrides, dry_run=True) == 0
    out = capsys.readouterr().out
    assert "from SLURM job 4242: num_machines 2, machine_rank 1, main_process_ip gpu07" in out
    args = accelerate_args(next(x for x in out.splitlines() if x.startswith("would launch: "))[14:].split())
    assert (args.num_machines, args.num_processes, args.machine_rank, args.nproc_per_node) == (2, 16, 1, "8")
    params, _ = load_train_params(words[3], overrides)
    assert params.batch_size * params.gradient_accumulation_steps * args.num_processes == 128


def test_one_local_process_runs_without_a_launcher() -> None:
    """A single process on one machine is started as itself: accelerate would only add a process."""
    cmd = accelerate_command(LaunchParams(num_processes=1), Path("job.json"))
    assert cmd == [sys.executable, "-m", "workbench.notebook.rank_entry", "--rank-run", "job.json"]
    launched = accelerate_command(LaunchParams(num_processes=2), Path("job.json"))
    assert launched[1:3] == ["-m", "accelerate.commands.launch"]
    assert launched[-4:] == ["--module", "workbench.notebook.rank_entry", "--rank-run", "job.json"]
