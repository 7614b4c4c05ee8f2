from t5lab.cli import main

raise SystemExit(main())
