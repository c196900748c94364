from hq_sweep.cli import main

main()
