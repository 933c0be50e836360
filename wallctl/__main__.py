from wallctl.cli import main

raise SystemExit(main())
