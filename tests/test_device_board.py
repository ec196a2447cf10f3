"""`--device rpi4` on a machine that is not a Pi 4 is said in one line (edge.inference.device.board_mismatch)."""

from __future__ import annotations

from edge.inference.device import board_mismatch, load_device, machine_model, parse_config


def test_a_pi_config_on_another_machine_says_so_in_one_line():
    rpi4 = load_device("rpi4")
    assert rpi4.board == "Raspberry Pi 4"
    assert board_mismatch(rpi4, "Raspberry Pi 4 Model B Rev 1.4") is None
    for elsewhere, shown in (("", "no board model in /proc/device-tree/model"), ("Raspberry Pi 5 Model B Rev 1.0", "a Raspberry Pi 5")):
        line = board_mismatch(rpi4, elsewhere)
        assert line and "\n" not in line and shown in line and "not Raspberry Pi 4 figures" in line
    assert board_mismatch(load_device("rpi5"), "Raspberry Pi 4 Model B Rev 1.4").count("Raspberry Pi 5") == 2


def test_configs_without_a_board_fit_any_machine():
    for name in ("x86", "coral-usb"):
        assert board_mismatch(load_device(name), "") is None
    assert parse_config('board = "Coral Dev Board"\n', name="b", where="b.toml").board == "Coral Dev Board"


def test_the_board_name_comes_from_the_device_tree_or_cpuinfo(tmp_path):
    tree, cpuinfo = tmp_path / "model", tmp_path / "cpuinfo"
    tree.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    cpuinfo.write_text("processor\t: 0\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n")
    assert machine_model((str(tree),), str(cpuinfo)) == "Raspberry Pi 4 Model B Rev 1.4"
    assert machine_model((str(tmp_path / "absent"),), str(cpuinfo)) == "Raspberry Pi 5 Model B Rev 1.0"
    assert machine_model((str(tmp_path / "absent"),), str(tmp_path / "absent")) == ""
