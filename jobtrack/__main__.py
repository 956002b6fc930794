from jobtrack.cli import main

main()
