app_name = "switchroles"

urlpatterns: list = []
