"""A script that drives the bench of the `jmp shell` it runs in.

uv run jmp shell --exporter-config examples/local.yaml -- python examples/bench_script.py
"""

from __future__ import annotations

from jumpstarter.utils import env


def main() -> None:
    with env() as bench:  # the exporter of the enclosing jmp shell
        bench.power.cycle(wait=0.1)
        reading = next(iter(bench.power.read()))
        state = "on" if bench.power.state() else "off"
        print(f"power: {state}, {reading.voltage} V, {reading.current} A")

        with bench.serial.open() as console:  # a pexpect session on the serial port
            console.sendline("ping")
            console.expect("ping")  # loop:// sends back what it receives
            print("serial: the console answered")

        with bench.net.stream() as connection:
            connection.send(b"hello")
            print(f"net: {connection.receive().decode()}")


if __name__ == "__main__":
    main()
