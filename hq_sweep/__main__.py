from hq_sweep.cli.app import main

main()
