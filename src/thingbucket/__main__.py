from thingbucket.cli import main

main()
