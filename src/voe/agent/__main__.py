from voe.agent.main import main

main()
