from mqlengine.cli.app import main

main()
