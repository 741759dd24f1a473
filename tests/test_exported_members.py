import instructkit


def test_all_exports_exist_and_nothing_else_public_is_listed():
    for name in instructkit.__all__:
        assert hasattr(instructkit, name), name
    assert len(set(instructkit.__all__)) == len(instructkit.__all__)
    # the public surface is deliberate: every public name in the module namespace is in __all__
    public = {n for n in dir(instructkit) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(instructkit, n)).__name__ == "module"}
    assert public - modules - set(instructkit.__all__) == set()


def test_py_typed_ships():
    from pathlib import Path

    assert (Path(instructkit.__file__).parent / "py.typed").exists()


def test_import_stays_light():
    """The extras (torch, Presidio, FAISS, openai) load only when what needs them is used."""
    import subprocess
    import sys

    code = ("import sys, instructkit; heavy = [m for m in ('torch', 'presidio_analyzer', 'faiss', "
            "'openai', 'sentence_transformers') if m in sys.modules]; print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_publish_is_the_function_the_readme_shows():
    # ``instructkit.publish(DIR, repo_id=..., private=True)``: the subpackage is ``hub``
    import instructkit.hub  # noqa: F401 - importing the subpackage must not shadow the name

    assert callable(instructkit.publish) and instructkit.publish.__module__ == "instructkit.hub.publisher"
