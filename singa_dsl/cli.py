def main(): print("todo")
